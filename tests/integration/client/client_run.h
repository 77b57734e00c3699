// Running the client in-process against a FakeDaemon, capturing what it prints.
#pragma once

#include <google/protobuf/util/json_util.h>

#include <sstream>
#include <string>
#include <vector>

#include "fake_daemon.h"
#include "hvmm/daemon/client/client.h"

namespace hvmm::client::testing {

// What one run of the client did.
struct ClientRun {
  int status = -1;
  std::string out;
  std::string err;
};

// Run `args` with --socket naming `daemon` (after the command words, as people type it).
inline ClientRun run(const FakeDaemon& daemon, std::vector<std::string> args,
                     bool terminal = false) {
  args.push_back("--socket");
  args.push_back(daemon.socket());
  std::ostringstream out;
  std::ostringstream err;
  ClientIo io{out, err, terminal};
  ClientRun result;
  result.status = run_client(args, io);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// The lines of `text`.
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    result.push_back(line);
  }
  return result;
}

// `json` parsed back as T (the client prints protobuf's JSON mapping).
template <typename T>
T from_json(const std::string& json) {
  T message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << ": " << json;
  return message;
}

// True when a and b hold the same fields.
inline bool same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace hvmm::client::testing
