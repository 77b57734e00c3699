// Who is at the other end of a unix socket connection, and whether the daemon serves them:
// root, or a member of the socket's group (primary or supplementary), as the kernel recorded
// them when the peer connected (SO_PEERCRED, SO_PEERGROUPS).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "hvmm/base/result.h"

namespace hvmm::daemon {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary
};

// The credentials of the peer of the connected unix socket `fd`.
Result<PeerCredentials> peer_credentials(int fd);

// Whether `peer` may use a socket whose group is `socket_gid`.
bool peer_allowed(const PeerCredentials& peer, gid_t socket_gid);

}  // namespace hvmm::daemon
