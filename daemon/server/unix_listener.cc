// The daemon's unix socket (unix_listener.h).
#include "hvmm/daemon/server/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/peer_credentials.h"

namespace hvmm::daemon {

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace {

Error socket_error(const std::string& path, const std::string& what) {
  return make_error(ErrorCode::kUnavailable, "socket: {}: {}", path, what);
}

// Remove a stale socket at `path`; fail when it is live or is something else.
Result<void> clear_path(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    return errno == ENOENT ? Ok() : Result<void>(socket_error(path, std::strerror(errno)));
  }
  if (!S_ISSOCK(info.st_mode)) {
    return socket_error(path, "exists and is not a socket");
  }
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(probe);
  if (live) {
    return socket_error(path, "another daemon is serving it");
  }
  if (::unlink(path.c_str()) != 0) {
    return socket_error(path,
                        std::string("cannot remove the stale socket: ") + std::strerror(errno));
  }
  return Ok();
}

}  // namespace

UnixListener::UnixListener(asio::io_context& io, std::string path, gid_t gid)
    : acceptor_(io), path_(std::move(path)), gid_(gid) {}

UnixListener::~UnixListener() {
  close();
}

Result<std::unique_ptr<UnixListener>> UnixListener::open(asio::io_context& io,
                                                         const std::string& path,
                                                         std::optional<gid_t> group) {
  std::error_code dir_error;
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, dir_error);
    if (dir_error) {
      return socket_error(path, "cannot create its directory: " + dir_error.message());
    }
  }
  HVMM_TRY(clear_path(path));
  std::unique_ptr<UnixListener> listener(new UnixListener(io, path, group.value_or(::getegid())));
  boost::system::error_code error;
  listener->acceptor_.open(stream_protocol(), error);
  if (!error) {
    // 0660 from the start: no moment where others could connect.
    mode_t old_mask = ::umask(0117);
    listener->acceptor_.bind(stream_protocol::endpoint(path), error);
    ::umask(old_mask);
  }
  if (!error) {
    listener->acceptor_.listen(asio::socket_base::max_listen_connections, error);
  }
  if (error) {
    return socket_error(path, error.message());
  }
  if (::chmod(path.c_str(), 0660) != 0 ||
      (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0)) {
    return socket_error(path, std::string("cannot set its mode or group: ") + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    listener->inode_ = info.st_ino;
  }
  return listener;
}

void UnixListener::start(Accepted accepted) {
  accepted_ = std::move(accepted);
  accept_next();
}

void UnixListener::accept_next() {
  acceptor_.async_accept(
      [this](const boost::system::error_code& error, stream_protocol::socket socket) {
        if (closed_ || error == asio::error::operation_aborted) {
          return;
        }
        if (!error) {
          on_connection(std::move(socket));
        } else {
          log::warn("accept failed", {{"socket", path_}, {"error", error.message()}});
        }
        accept_next();
      });
}

void UnixListener::on_connection(stream_protocol::socket socket) {
  auto peer = peer_credentials(socket.native_handle());
  if (!peer) {
    ++refused_;
    log::warn("connection refused: no peer credentials", {{"error", peer.error().message}});
    return;  // `socket` closes it
  }
  if (!peer_allowed(*peer, gid_)) {
    ++refused_;
    log::warn("connection refused: not root and not in the socket's group",
              {{"pid", peer->pid}, {"uid", peer->uid}, {"gid", peer->gid}, {"socket_gid", gid_}});
    return;
  }
  log::debug("connection accepted", {{"pid", peer->pid}, {"uid", peer->uid}});
  // gRPC's endpoint expects a non-blocking descriptor (accept() does not make one).
  boost::system::error_code error;
  socket.non_blocking(true, error);
  if (error) {
    log::warn("connection dropped: cannot make it non-blocking", {{"error", error.message()}});
    return;
  }
  accepted_(socket.release());
}

void UnixListener::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  struct stat info {};
  // Only our own socket: a successor may have replaced it already.
  if (::stat(path_.c_str(), &info) == 0 && info.st_ino == inode_) {
    ::unlink(path_.c_str());
  }
}

}  // namespace hvmm::daemon
