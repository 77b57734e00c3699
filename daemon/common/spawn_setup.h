// SpawnSetup: posix_spawn's attributes and file actions, initialized together and destroyed
// on every path (posix_spawn, not fork, because the spawning processes have gRPC threads and
// only exec is safe in a child of those).
#pragma once

#include <spawn.h>

namespace hvmm::daemon {

struct SpawnSetup {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

}  // namespace hvmm::daemon
