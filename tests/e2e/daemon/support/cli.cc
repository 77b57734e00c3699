// Running the CLI (cli.h).
#include "cli.h"

#include <sstream>

#include "e2e_binaries.h"

namespace hvmm::e2e {

Result<CommandResult> run_cli(const std::string& socket, const std::vector<std::string>& args,
                              const CliOptions& options) {
  const Binaries& paths = binaries();
  std::vector<std::string> argv{options.binary == CliBinary::kHvmm ? paths.hvmm
                                                                   : paths.hvmm_client};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--socket");
  argv.push_back(socket);
  if (options.json) {
    argv.push_back("--json");
  }
  return run_command(argv, options.timeout);
}

std::vector<std::string> json_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::istringstream stream(output);
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.front() == '{') {
      lines.push_back(line);
    }
  }
  return lines;
}

}  // namespace hvmm::e2e
