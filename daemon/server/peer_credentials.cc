// Peer credentials of unix socket connections (peer_credentials.h).
#include "hvmm/daemon/server/peer_credentials.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hvmm::daemon {

Result<PeerCredentials> peer_credentials(int fd) {
  ucred cred{};
  socklen_t length = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    return make_error(ErrorCode::kInternal, "SO_PEERCRED: {}", std::strerror(errno));
  }
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  std::vector<gid_t> groups(16);
  for (;;) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      break;
    }
    if (errno != ERANGE || bytes / sizeof(gid_t) <= groups.size()) {
      return make_error(ErrorCode::kInternal, "SO_PEERGROUPS: {}", std::strerror(errno));
    }
    groups.resize(bytes / sizeof(gid_t));  // the kernel said how many there are
  }
  peer.groups = std::move(groups);
  return peer;
}

bool peer_allowed(const PeerCredentials& peer, gid_t socket_gid) {
  return peer.uid == 0 || peer.gid == socket_gid ||
         std::find(peer.groups.begin(), peer.groups.end(), socket_gid) != peer.groups.end();
}

}  // namespace hvmm::daemon
