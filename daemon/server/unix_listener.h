// UnixListener: the daemon's unix socket. gRPC's own listener gives no access to a
// connection's descriptor, so the daemon accepts connections itself (on the event loop),
// checks each peer's credentials (peer_credentials.h) and hands the allowed ones to the gRPC
// server (grpc::AddInsecureChannelFromFd); a refused connection is closed and logged.
//
// The socket is created mode 0660 with the configured group (bind under a umask that leaves
// no window with wider permissions), in a directory created if missing. A stale socket (no
// one accepts on it) is replaced; a live one means another daemon serves it: refused. The
// socket file is removed when the listener closes, unless something else has replaced it.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "hvmm/base/result.h"

namespace hvmm::daemon {

class UnixListener {
 public:
  // Called on the loop with an allowed connection, which it owns from then on.
  using Accepted = std::function<void(int fd)>;

  static Result<std::unique_ptr<UnixListener>> open(boost::asio::io_context& io,
                                                    const std::string& path,
                                                    std::optional<gid_t> group);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  void start(Accepted accepted);
  // Stop accepting and remove the socket file.
  void close();

  gid_t gid() const { return gid_; }
  uint64_t refused() const { return refused_; }

 private:
  UnixListener(boost::asio::io_context& io, std::string path, gid_t gid);
  void accept_next();
  void on_connection(boost::asio::local::stream_protocol::socket socket);

  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  gid_t gid_;
  ino_t inode_ = 0;
  Accepted accepted_;
  uint64_t refused_ = 0;
  bool closed_ = false;
};

}  // namespace hvmm::daemon
