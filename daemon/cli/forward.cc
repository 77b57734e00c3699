// Forwarding the client commands to hvmm-client.
#include "hvmm/daemon/cli/forward.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "hvmm/daemon/client/command_list.h"
#include "hvmm/daemon/client/exit_codes.h"

namespace hvmm::cli {
namespace {

// The global option `arg` is, or nullptr ("--socket=PATH" counts as --socket with its value).
const client::ClientGlobalOption* global_option(const std::string& arg) {
  for (const client::ClientGlobalOption& option : client::kClientGlobalOptions) {
    if (arg == option.name ||
        (option.takes_value && arg.rfind(std::string(option.name) + "=", 0) == 0)) {
      return &option;
    }
  }
  return nullptr;
}

// The running executable's path, or "" when /proc is unavailable.
std::string self_path() {
  char buffer[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

}  // namespace

// Skip global options (and the value of those that take one), then look at one word.
std::string client_command_word(const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size()) {
    const client::ClientGlobalOption* option = global_option(args[i]);
    if (!option) {
      break;
    }
    const bool inline_value = args[i].find('=') != std::string::npos;
    i += option->takes_value && !inline_value ? 2 : 1;
  }
  if (i < args.size() && client::is_client_command(args[i])) {
    return args[i];
  }
  return {};
}

std::string client_path_beside(const std::string& self) {
  const size_t slash = self.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : self.substr(0, slash);
  return dir + "/hvmm-client";
}

// execv keeps argv (argv[0] stays "hvmm", so the client's messages say "hvmm").
int exec_client(char** argv) {
  const std::string self = self_path();
  if (self.empty()) {
    fmt::print(stderr, "hvmm: cannot find hvmm-client: /proc/self/exe is unreadable: {}\n",
               std::strerror(errno));
    return client::kExitClientMissing;
  }
  const std::string client = client_path_beside(self);
  ::execv(client.c_str(), argv);
  fmt::print(stderr,
             "hvmm: the client commands need hvmm-client, expected at {}: {} (build or install "
             "it beside hvmm)\n",
             client, std::strerror(errno));
  return client::kExitClientMissing;
}

}  // namespace hvmm::cli
