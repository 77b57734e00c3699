// Tests that the exit-status table is the one truth: vmm/README.md's table equals
// kExitStatuses row for row, the root README names the same range, and the help lists it.
#include "hvmm/vmm/machine/exit_status.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace hvmm::vmm {
namespace {

// A file of the source tree, whole.
std::string source_file(const std::string& relative) {
  std::ifstream file(std::string(HVMM_SOURCE_DIR) + "/" + relative);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Trim spaces on both ends.
std::string trim(const std::string& text) {
  size_t first = text.find_first_not_of(' ');
  size_t last = text.find_last_not_of(' ');
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// The cells of one Markdown table row; "\|" is a literal bar inside a cell.
std::vector<std::string> split_row(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (line[i] == '|') {
      cells.push_back(trim(cell));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return cells;
}

// The rows of the first table after `heading` in `markdown` (header and separator skipped).
std::vector<std::vector<std::string>> table_after(const std::string& markdown,
                                                  const std::string& heading,
                                                  std::vector<std::string>* header) {
  std::istringstream lines(markdown.substr(std::min(markdown.find(heading), markdown.size())));
  std::vector<std::vector<std::string>> rows;
  std::string line;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) != 0) {
      if (in_table) {
        break;
      }
      continue;
    }
    if (!in_table) {
      *header = split_row(line);
      in_table = true;
      std::getline(lines, line);  // | --- | --- |
      continue;
    }
    rows.push_back(split_row(line));
  }
  return rows;
}

// vmm/README.md's exit-status table is exactly kExitStatuses: same rows, same order, same words.
TEST(ExitStatus, ReadmeTableMatchesConstexprTable) {
  std::string readme = source_file("vmm/README.md");
  ASSERT_NE(readme.find("## Exit status"), std::string::npos) << "vmm/README.md not found";
  std::vector<std::string> header;
  auto rows = table_after(readme, "## Exit status", &header);
  EXPECT_EQ(header, (std::vector<std::string>{"status", "name", "meaning"}));
  ASSERT_EQ(rows.size(), kExitStatuses.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 3u) << "row " << i;
    EXPECT_EQ(rows[i][0], kExitStatuses[i].status) << "row " << i;
    EXPECT_EQ(rows[i][1], kExitStatuses[i].name) << "row " << i;
    EXPECT_EQ(rows[i][2], kExitStatuses[i].meaning) << "row " << i;
  }
}

// The root README names the VMM's own statuses as the table has them.
TEST(ExitStatus, RootReadmeNamesTheSameStatuses) {
  std::string first;
  std::string last;
  std::string signal;
  for (const ExitStatusInfo& info : kExitStatuses) {
    if (info.status.find_first_not_of("0123456789") == std::string_view::npos) {
      (first.empty() ? first : last) = std::string(info.status);
    } else if (info.status.find('+') != std::string_view::npos) {
      signal = std::string(info.status);
    }
  }
  std::string expected = "statuses " + first + "-" + last + " and " + signal + " are hvmm's own";
  EXPECT_NE(source_file("README.md").find(expected), std::string::npos) << expected;
}

// The help footer lists every row and says how the VMM announces its own statuses.
TEST(ExitStatus, HelpListsEveryRow) {
  std::string help = exit_status_help();
  for (const ExitStatusInfo& info : kExitStatuses) {
    EXPECT_NE(help.find(std::string(info.status)), std::string::npos) << info.status;
    EXPECT_NE(help.find(std::string(info.name)), std::string::npos) << info.name;
    EXPECT_NE(help.find(std::string(info.meaning)), std::string::npos) << info.meaning;
  }
  EXPECT_NE(help.find("hvmm: VM ended by the VMM: REASON (exit status N)"), std::string::npos);
}

// The named constants are the table's single codes.
TEST(ExitStatus, ConstantsMatchRows) {
  EXPECT_EQ(find_exit_status(std::to_string(kExitBadArguments))->name, "bad-arguments");
  EXPECT_EQ(find_exit_status(std::to_string(kExitSetupFailed))->name, "setup-failed");
  EXPECT_EQ(find_exit_status(std::to_string(kExitTripleFault))->name, "triple-fault");
  EXPECT_EQ(find_exit_status(std::to_string(kExitInternalError))->name, "internal-error");
  EXPECT_EQ(find_exit_status(std::to_string(kExitGuestShutdown))->name, "guest-shutdown");
}

}  // namespace
}  // namespace hvmm::vmm
