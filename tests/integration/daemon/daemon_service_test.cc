// hvmmd as a service: health and reflection, its socket (mode, group, peers, removal), its
// configuration errors, its log formats, TCP with and without TLS.
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

// The daemon comes up SERVING and reflection lists every hvmm.v1 service.
TEST(DaemonService, HealthServingAndReflectionListsTheServices) {
  DaemonHarness daemon(fake_daemon_options());
  ASSERT_TRUE(daemon.start()) << daemon.log();
  EXPECT_EQ(health_status(daemon.channel()), 1);
  auto services = reflected_services(daemon.channel());
  for (const char* name :
       {"hvmm.v1.VmService", "hvmm.v1.MemoryService", "hvmm.v1.TlbService",
        "hvmm.v1.NotifierService", "hvmm.v1.FaultService", "hvmm.v1.GuestService",
        "hvmm.v1.DaemonService", "hvmm.v1.HostPolicyService", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(services.begin(), services.end(), name), services.end()) << name;
  }
  // Health by service name: HealthCheckRequest{service = 1}, answered SERVING (1).
  const std::string name = "hvmm.v1.HostPolicyService";
  std::string request = std::string("\x0a") + static_cast<char>(name.size()) + name;
  std::string response;
  grpc::Status status = raw_unary(daemon.channel(), "/grpc.health.v1.Health/Check", request,
                                  &response, std::chrono::milliseconds(1000));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, std::string("\x08\x01"));
}

// GetDaemonInfo reports the daemon's own pid, version and VMID width.
TEST(DaemonService, DaemonInfo) {
  DaemonHarness daemon(fake_daemon_options(5));
  ASSERT_TRUE(daemon.start()) << daemon.log();
  DaemonClient client(daemon.channel());
  v1::GetDaemonInfoResponse info;
  ASSERT_TRUE(client.daemon->GetDaemonInfo(client.context().get(), {}, &info).ok());
  EXPECT_EQ(info.pid(), daemon.pid());
  EXPECT_EQ(info.version(), HVMM_VERSION);
  EXPECT_EQ(info.vmid_bits(), 5u);
  EXPECT_EQ(info.vmid_generation(), 1u);
  EXPECT_EQ(info.vms(), 0u);
}

// The socket is 0660 and belongs to the configured group; SIGTERM removes it and exits 0.
TEST(DaemonService, SocketIsGroupOnlyAndSigtermRemovesIt) {
  const group* nogroup = ::getgrnam("nogroup");
  gid_t gid = nogroup != nullptr ? nogroup->gr_gid : 65534;
  auto options = fake_daemon_options();
  options.extra_config = "socket-group = \"" + std::to_string(gid) + "\"\n";
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  struct stat info {};
  ASSERT_EQ(::stat(daemon.socket().c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, gid);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  EXPECT_NE(::access(daemon.socket().c_str(), F_OK), 0) << "the socket is still there";
  EXPECT_NE(daemon.log().find("hvmmd stopped"), std::string::npos) << daemon.log();
}

// Connect to `socket` and wait up to 5 s for the first bytes: true when the daemon closed the
// connection instead of speaking.
bool peer_gets_eof(const std::string& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof(address.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return false;
  }
  pollfd ready{fd, POLLIN, 0};
  char byte = 0;
  bool eof = ::poll(&ready, 1, 5000) == 1 && ::read(fd, &byte, 1) == 0;
  ::close(fd);
  return eof;
}

// A peer that is neither root nor in the socket's group is closed and logged, even when the
// file's mode would let it connect; root keeps being served.
TEST(DaemonService, RefusesPeersOutsideTheSocketGroup) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "skip: needs root to connect as another user";
  }
  DaemonHarness daemon(fake_daemon_options());
  ASSERT_TRUE(daemon.start()) << daemon.log();
  // Only the credential check is left between uid 65534 and the daemon.
  ASSERT_EQ(::chmod(daemon.dir().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(daemon.socket().c_str(), 0666), 0);
  // The child speaks no gRPC (the parent's gRPC threads do not survive fork): it connects and
  // reads. An allowed peer gets the server's HTTP/2 SETTINGS at once; a refused one, EOF.
  pid_t child = ::fork();
  if (child == 0) {
    gid_t none[1] = {65534};
    if (::setgroups(1, none) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
      ::_exit(3);
    }
    ::_exit(peer_gets_eof(daemon.socket()) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "uid 65534 was served";
  EXPECT_FALSE(peer_gets_eof(daemon.socket())) << "root was refused";
  EXPECT_EQ(health_status(daemon.channel()), 1);
  EXPECT_EQ(daemon.stop(), 0);
  EXPECT_NE(daemon.log().find("connection refused: not root and not in the socket's group"),
            std::string::npos)
      << daemon.log();
}

struct BadConfig {
  const char* what;
  std::string config;             // lines of the file
  std::vector<std::string> args;  // flags
  const char* named;              // what the message must name
};

// Bad keys and values, from the file or from flags, exit 120 naming the key, and leave no
// socket behind.
TEST(DaemonService, BadConfigurationExits120NamingTheKey) {
  const std::vector<BadConfig> cases = {
      {"unknown key in the file", "bogus-key = 1\n", {}, "bogus-key"},
      {"vmid bits out of range", "", {"--vmid-bits", "1"}, "vmid-bits"},
      {"a value out of range in the file", "stop-grace-ms = 9999999\n", {}, "stop-grace-ms"},
      {"TCP without TLS", "", {"--listen-tcp", "127.0.0.1:0"}, "listen-tcp"},
      {"a TLS key without a certificate",
       "",
       {"--listen-tcp", "127.0.0.1:0", "--tls-key", "/nonexistent"},
       "listen-tcp"},
      {"unreadable certificate",
       "",
       {"--listen-tcp", "127.0.0.1:0", "--tls-key", "/nonexistent", "--tls-cert", "/nonexistent"},
       "tls-cert"},
      {"log format", "", {"--log-format", "xml"}, "log-format"},
      {"log level", "log-level = \"loud\"\n", {}, "log-level"},
      {"unknown group", "socket-group = \"no-such-group-hvmm\"\n", {}, "socket-group"},
      {"unknown flag", "", {"--frobnicate"}, "frobnicate"},
  };
  for (const BadConfig& bad : cases) {
    auto options = fake_daemon_options();
    options.extra_config = bad.config;
    options.extra_args = bad.args;
    DaemonHarness daemon(options);
    EXPECT_FALSE(daemon.start(std::chrono::seconds(5))) << bad.what;
    EXPECT_EQ(daemon.stop(), 120) << bad.what;
    EXPECT_NE(daemon.log().find(bad.named), std::string::npos) << bad.what << ": " << daemon.log();
    EXPECT_NE(::access(daemon.socket().c_str(), F_OK), 0) << bad.what;
  }
}

// A second daemon on a live socket refuses to start and leaves the first one serving.
TEST(DaemonService, SecondDaemonOnTheSameSocketIsRefused) {
  DaemonHarness first(fake_daemon_options());
  ASSERT_TRUE(first.start()) << first.log();
  ChildProcess second(
      {HVMMD_BINARY, "--socket", first.socket(), "--state-dir", first.dir() + "/second"}, true);
  RunResult result = second.wait(std::chrono::seconds(20));
  EXPECT_EQ(result.status, 1) << result.out;
  EXPECT_NE(result.out.find("another daemon is serving it"), std::string::npos) << result.out;
  EXPECT_EQ(health_status(first.channel()), 1);
}

// `line` is {"time":"YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ","level":"...","msg":"...",...}.
bool json_log_line(const std::string& line) {
  const std::string head = "{\"time\":\"";
  const std::string time_shape = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
  if (line.rfind(head, 0) != 0 || line.size() < head.size() + time_shape.size() + 2 ||
      line.back() != '}') {
    return false;
  }
  for (size_t i = 0; i < time_shape.size(); ++i) {
    char c = line[head.size() + i];
    if (time_shape[i] == 'd' ? std::isdigit(static_cast<unsigned char>(c)) == 0
                             : c != time_shape[i]) {
      return false;
    }
  }
  std::string rest = line.substr(head.size() + time_shape.size());
  size_t msg = rest.find("\",\"msg\":\"");
  return rest.rfind("\",\"level\":\"", 0) == 0 && msg != std::string::npos &&
         rest.find_first_not_of("abcdefghijklmnopqrstuvwxyz", 11) == msg;
}

// --log-format json: every line of the daemon's log is one JSON object with time, level, msg.
TEST(DaemonService, JsonLogLines) {
  auto options = fake_daemon_options();
  options.extra_args = {"--log-format", "json"};
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  DaemonClient client(daemon.channel());
  client.run("logged");
  ASSERT_EQ(daemon.stop(), 0);
  std::istringstream lines(daemon.log());
  std::string line;
  int daemon_lines = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("fake-vm", 0) == 0) {
      continue;  // a VM process's own output, not the daemon's log
    }
    ++daemon_lines;
    EXPECT_TRUE(json_log_line(line)) << line;
  }
  EXPECT_GT(daemon_lines, 3);
  EXPECT_NE(daemon.log().find(R"("msg":"vm running","vm":"logged")"), std::string::npos)
      << daemon.log();
}

// The TCP port the daemon logged ("tcp_port=N").
int logged_tcp_port(const std::string& log) {
  size_t at = log.find("tcp_port=");
  return at == std::string::npos ? 0 : std::atoi(log.c_str() + at + 9);
}

// --insecure-tcp serves TCP without TLS (for tests).
TEST(DaemonService, InsecureTcpForTests) {
  auto options = fake_daemon_options();
  options.extra_args = {"--listen-tcp", "127.0.0.1:0", "--insecure-tcp"};
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  int port = logged_tcp_port(daemon.log());
  ASSERT_GT(port, 0) << daemon.log();
  auto tcp =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  EXPECT_EQ(health_status(tcp), 1);
}

// TCP with TLS: a client that trusts the certificate is served, a plaintext one is not.
TEST(DaemonService, TcpWithTls) {
  TempDir dir;
  std::string cert = dir.path + "/cert.pem";
  std::string key = dir.path + "/key.pem";
  RunResult made = run_process(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
       "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert},
      std::chrono::seconds(60), true);
  if (made.status != 0) {
    GTEST_SKIP() << "skip: openssl cannot make a test certificate: " << made.out;
  }
  auto options = fake_daemon_options();
  options.extra_args = {"--listen-tcp", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key};
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  int port = logged_tcp_port(daemon.log());
  ASSERT_GT(port, 0) << daemon.log();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = slurp(cert);
  grpc::ChannelArguments arguments;
  arguments.SetSslTargetNameOverride("localhost");
  auto secure = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                          grpc::SslCredentials(ssl), arguments);
  EXPECT_EQ(health_status(secure), 1);
  auto plain =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  EXPECT_EQ(health_status(plain), -1);
}

}  // namespace
}  // namespace hvmm::testing
