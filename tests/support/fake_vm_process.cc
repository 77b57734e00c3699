// hvmm-fake-vm: a stand-in for the VM process `hvmm-vm`, for the daemon's host tests (no KVM).
//
// A fake in tests only: it speaks channel.proto like hvmm-vm (Launch first, then Started,
// Requests answered with canned figures, Events) but runs no VM. The real VM process is tested
// against the daemon end to end under KVM (tests/e2e). Its behaviour is set per VM by words
// of the VM's spec.cmdline:
//   fake.fail=kvm              fail the start like hvmm-vm without /dev/kvm (Failed, exit 121)
//   fake.silent=1              answer no request (the daemon's deadlines are what is tested)
//   fake.hang_start=1          never say Started (the daemon's start timeout is tested)
//   fake.garbage=parse|length  after Started, send a frame that does not parse, or a length of
//                              1 GiB (the daemon must end the channel, kill and report it)
//   fake.binary_console=1      print bytes that are not UTF-8 on the console
//   fake.ignore_shutdown=1     acknowledge Shutdown and keep running (the grace runs out)
//   fake.notifier_rate=N       while forwarding is on, emit N notifier events a second
//   fake.balloon_step=BYTES    the balloon moves this far toward its target per stats request
//                              (default: it reaches a target at once)
//   fake.exit_after_ms=N       the "guest" exits by itself after N ms with fake.exit_status
//   fake.rss=BYTES             host.rss_bytes reported: this less what the balloon and reclaim
//                              hold (default: the process's own VmRSS)
//   fake.working_set=BYTES     the guest's working set: reclaim never takes it, the balloon's
//                              guest stats report the rest of guest RAM as available-memory
//                              (default: a quarter of RAM)
//   fake.balloon_stuck=1       the balloon accepts targets and never moves
// With spec.reclaim_policy set it has "reclaim": Reclaim set_policy keeps the policy (its
// target= bytes), epochs take guest RAM down to that target but never into the working set.
// A Prepare first (the daemon's warm pool) is answered with Prepared; the Launch that follows
// must have the prepared memory_bytes and vcpus (else Failed naming the field, exit 120), and
// its boot line says "booted warm". After Started it sends FirstRun (the time it said so).
// It prints console lines ("fake-vm NAME: ...") on its stdout as a guest would, among them one
// per FlushStage2Tlb, and counts the flushes in GetMemoryStats (tlb.flushes_all).
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/supervisor/v1/channel.pb.h"

namespace {

namespace sv = hvmm::supervisor::v1;
namespace v1 = hvmm::v1;
using Clock = std::chrono::steady_clock;

uint64_t unix_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

uint64_t rss_bytes() {
  FILE* status = std::fopen("/proc/self/status", "r");
  char line[256];
  uint64_t kib = 0;
  while (status != nullptr && std::fgets(line, sizeof line, status) != nullptr) {
    if (std::sscanf(line, "VmRSS: %lu kB", &kib) == 1) {
      break;
    }
  }
  if (status != nullptr) {
    std::fclose(status);
  }
  return kib * 1024;
}

class FakeVm {
 public:
  explicit FakeVm(int fd) : fd_(fd) {}

  int run() {
    hvmm::daemon::FrameReader reader(fd_);
    auto first = reader.read();
    sv::ToVm launch_message;
    if (!first || !first->has_value() || !launch_message.ParseFromString(**first) ||
        (!launch_message.has_launch() && !launch_message.has_prepare())) {
      std::fprintf(stderr, "fake-vm: no Launch on the channel\n");
      return 120;
    }
    std::optional<sv::Prepare> prepared;
    if (launch_message.has_prepare()) {
      prepared = launch_message.prepare();
      sv::ToDaemon answer;
      answer.mutable_event()->mutable_prepared()->set_pid(::getpid());
      answer.mutable_event()->mutable_prepared()->set_memory_bytes(prepared->memory_bytes());
      answer.mutable_event()->mutable_prepared()->set_vcpus(prepared->vcpus());
      send(answer);
      auto next = reader.read();
      if (!next || !next->has_value() || !launch_message.ParseFromString(**next) ||
          !launch_message.has_launch()) {
        std::fprintf(stderr, "fake-vm: no Launch after Prepare\n");
        return 120;
      }
    }
    launch_ = launch_message.launch();
    parse_knobs(launch_.spec().cmdline());
    reclaim_policy_ = launch_.spec().reclaim_policy();
    memory_ = launch_.spec().memory_bytes() != 0 ? launch_.spec().memory_bytes() : 128ull << 20;
    if (prepared) {
      const uint32_t vcpus = launch_.spec().vcpus() != 0 ? launch_.spec().vcpus() : 1;
      if (memory_ != prepared->memory_bytes() || vcpus != prepared->vcpus()) {
        return fail_mismatch(memory_ != prepared->memory_bytes() ? "memory_bytes" : "vcpus");
      }
    }
    if (knob("fail") == "kvm") {
      return fail_like_no_kvm();
    }
    if (knob("hang_start") == "1") {
      say("hanging before Started");
      for (;;) {
        ::pause();
      }
    }
    say(std::string(prepared ? "booted warm" : "booted") + ", vmid " +
        std::to_string(launch_.vmid()) + " generation " +
        std::to_string(launch_.vmid_generation()));
    sv::ToDaemon started;
    started.mutable_event()->mutable_started()->set_pid(::getpid());
    started.mutable_event()->mutable_started()->set_memory_bytes(memory_);
    started.mutable_event()->mutable_started()->set_guest_cmdline(launch_.spec().cmdline());
    send(started);
    started_at_ = Clock::now();
    sv::ToDaemon first_run;
    first_run.mutable_event()->mutable_first_run()->set_unix_ns(unix_ns());
    send(first_run);
    if (knob("binary_console") == "1") {
      std::fputs("fake-vm binary: \xff\xfe\xc0\x80 end\n", stdout);
      std::fflush(stdout);
    }
    if (knob("garbage") == "parse") {
      // A length-prefixed payload that is no ToDaemon: an invalid tag (field 0).
      std::string garbage = std::string("\x03\x00\x00\x00", 4);
      (void)!::write(fd_, garbage.data(), garbage.size());
    } else if (knob("garbage") == "length") {
      std::string huge = std::string("\x80\x80\x80\x80\x04", 5);  // 1 GiB
      (void)!::write(fd_, huge.data(), huge.size());
    }
    return loop();
  }

 private:
  void parse_knobs(const std::string& cmdline) {
    std::istringstream words(cmdline);
    std::string word;
    while (words >> word) {
      if (word.rfind("fake.", 0) == 0 && word.find('=') != std::string::npos) {
        size_t eq = word.find('=');
        knobs_[word.substr(5, eq - 5)] = word.substr(eq + 1);
      }
    }
  }
  std::string knob(const std::string& name) const {
    auto it = knobs_.find(name);
    return it == knobs_.end() ? "" : it->second;
  }
  uint64_t knob_number(const std::string& name) const {
    std::string value = knob(name);
    return value.empty() ? 0 : std::strtoull(value.c_str(), nullptr, 0);
  }

  void say(const std::string& line) {
    std::printf("fake-vm %s: %s\n", launch_.name().c_str(), line.c_str());
    std::fflush(stdout);
  }

  void send(const sv::ToDaemon& message) {
    if (!hvmm::daemon::write_frame(fd_, message.SerializeAsString())) {
      std::exit(0);  // the daemon is gone
    }
  }

  int fail_like_no_kvm() {
    const char* message = "cannot open /dev/kvm: No such file or directory";
    std::fprintf(stderr, "hvmm: %s\n", message);
    sv::ToDaemon failed;
    failed.mutable_event()->mutable_failed()->set_code(14);  // UNAVAILABLE
    failed.mutable_event()->mutable_failed()->set_message(message);
    failed.mutable_event()->mutable_failed()->set_exit_status(121);
    send(failed);
    return 121;
  }

  // A Launch whose spec is not what was prepared, as hvmm-vm reports it.
  int fail_mismatch(const std::string& field) {
    const std::string message =
        "spec does not match the prepared VM: " + field + ": not what was prepared";
    std::fprintf(stderr, "hvmm: %s\n", message.c_str());
    sv::ToDaemon failed;
    failed.mutable_event()->mutable_failed()->set_code(9);  // FAILED_PRECONDITION
    failed.mutable_event()->mutable_failed()->set_message(message);
    failed.mutable_event()->mutable_failed()->set_exit_status(120);
    send(failed);
    return 120;
  }

  int loop() {
    hvmm::daemon::FrameDecoder decoder;
    uint64_t exit_after = knob_number("exit_after_ms");
    // Wake every millisecond only when there is something to do on time.
    int timeout_ms = exit_after != 0 || knob_number("notifier_rate") != 0 ? 1 : 100;
    for (;;) {
      pollfd channel{fd_, POLLIN, 0};
      int ready = ::poll(&channel, 1, timeout_ms);
      if (ready > 0) {
        char chunk[65536];
        ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n <= 0) {
          say("channel closed: stopping");
          return 0;
        }
        decoder.feed(std::string_view(chunk, static_cast<size_t>(n)));
        for (;;) {
          auto payload = decoder.next();
          if (!payload) {
            return 123;
          }
          if (!payload->has_value()) {
            break;
          }
          sv::ToVm message;
          if (!message.ParseFromString(**payload) || !message.has_request()) {
            return 123;
          }
          if (auto status = serve(message.request())) {
            return *status;
          }
        }
      }
      emit_notifier_events();
      auto elapsed =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at_);
      if (exit_after != 0 && static_cast<uint64_t>(elapsed.count()) >= exit_after) {
        return exit_guest(static_cast<int>(knob_number("exit_status")));
      }
    }
  }

  int exit_guest(int status) {
    say("guest exits with status " + std::to_string(status));
    sv::ToDaemon exiting;
    exiting.mutable_event()->mutable_exiting()->set_status(status);
    exiting.mutable_event()->mutable_exiting()->set_reason("guest exited with status " +
                                                           std::to_string(status));
    send(exiting);
    return status;
  }

  // Answer one request; a status when the process should exit with it.
  std::optional<int> serve(const sv::Request& request) {
    if (knob("silent") == "1") {
      return std::nullopt;
    }
    sv::ToDaemon out;
    sv::Response& response = *out.mutable_response();
    response.set_id(request.id());
    std::optional<int> exit_status;
    switch (request.body_case()) {
      case sv::Request::kGetMemoryStats:
        stats(*response.mutable_get_memory_stats()->mutable_stats());
        break;
      case sv::Request::kSetBalloonTarget:
        balloon_target_ = request.set_balloon_target().target_bytes() & ~uint64_t{4095};
        if (knob_number("balloon_step") == 0 && knob("balloon_stuck") != "1") {
          balloon_actual_ = balloon_target_;
        }
        balloon(*response.mutable_set_balloon_target()->mutable_balloon());
        break;
      case sv::Request::kFlushStage2Tlb:
        ++flushes_;
        say("stage-2 TLB flush, generation " +
            std::to_string(request.flush_stage2_tlb().generation()));
        response.mutable_empty();
        break;
      case sv::Request::kShutdown:
        response.mutable_empty();
        if (knob("ignore_shutdown") != "1") {
          send(out);
          return exit_guest(request.shutdown().exit_status());
        }
        say("shutdown ignored");
        break;
      case sv::Request::kForwardNotifierEvents:
        forward_all_ = request.forward_notifier_events().all();
        filters_.assign(request.forward_notifier_events().filters().begin(),
                        request.forward_notifier_events().filters().end());
        say("forwarding " + std::string(forward_all_ ? "all" : std::to_string(filters_.size())) +
            " notifier ranges");
        response.mutable_empty();
        break;
      case sv::Request::kInvalidate:
        invalidate(request.invalidate().range(), request.invalidate().reason());
        response.mutable_invalidate()->set_subscribers(1);
        response.mutable_invalidate()->set_latency_ns(1000);
        break;
      case sv::Request::kProbe:
        fault(request.probe().ipa(), request.probe().write());
        response.mutable_probe()->set_value(0xffffffff);
        break;
      case sv::Request::kReclaim:
        reclaim(request.reclaim(), response);
        break;
      case sv::Request::kListSubscriptions: {
        auto* tlb = response.mutable_list_subscriptions()->add_subscriptions();
        tlb->set_id(1);
        tlb->set_owner("stage2-tlb");
        tlb->mutable_interval()->set_size(memory_);
        response.mutable_list_subscriptions()->set_invalidations(invalidations_);
        break;
      }
      default:
        canned(request, response);
        break;
    }
    send(out);
    return exit_status;
  }

  // The Response body named like the Request's, empty (OK).
  static void canned(const sv::Request& request, sv::Response& response) {
    const auto* body = sv::Request::descriptor()->FindFieldByNumber(request.body_case());
    const auto* field =
        body != nullptr ? sv::Response::descriptor()->FindFieldByName(body->name()) : nullptr;
    if (field == nullptr) {
      response.mutable_empty();
      return;
    }
    response.GetReflection()->MutableMessage(&response, field);
  }

  void balloon(v1::BalloonStats& out) const {
    out.set_present(true);
    out.set_target_bytes(balloon_target_);
    out.set_actual_bytes(balloon_actual_);
  }

  uint64_t working_set() const {
    return knob("working_set").empty() ? memory_ / 4 : knob_number("working_set");
  }
  uint64_t resident() const {
    uint64_t out = balloon_actual_ + reclaimed_;
    return memory_ > out ? memory_ - out : 0;
  }
  bool has_reclaim() const { return launch_.spec().has_reclaim_policy(); }

  void reclaim_stats(v1::ReclaimStats& out) const {
    out.set_enabled(true);
    out.set_policy(reclaim_policy_);
    out.set_epochs(epochs_);
    out.set_pages_reclaimed(reclaimed_ / 4096);
  }

  // Reclaim: set_policy keeps the policy; epochs take RAM down to its target= (bytes), only
  // from what is not the working set.
  void reclaim(const v1::ReclaimRequest& request, sv::Response& response) {
    if (!has_reclaim()) {
      response.set_code(9);  // FAILED_PRECONDITION
      response.set_message("the VM has no reclaim (spec.reclaim_policy is unset)");
      return;
    }
    auto& out = *response.mutable_reclaim();
    reclaim_stats(*out.mutable_before());
    if (request.action_case() == v1::ReclaimRequest::kSetPolicy) {
      reclaim_policy_ = request.set_policy();
      say("reclaim policy " + reclaim_policy_);
    } else {
      epochs_ += request.epochs();
      size_t at = reclaim_policy_.find("target=");
      if (at != std::string::npos) {
        uint64_t target = std::strtoull(reclaim_policy_.c_str() + at + 7, nullptr, 10);
        uint64_t floor = std::max(target, std::min(working_set(), resident()));
        if (resident() > floor) {
          reclaimed_ += (resident() - floor) & ~uint64_t{4095};
        }
      }
      say("reclaim epochs, " + std::to_string(reclaimed_) + " bytes reclaimed");
    }
    reclaim_stats(*out.mutable_after());
  }

  void stats(v1::MemoryStats& out) {
    uint64_t step = knob_number("balloon_step");
    if (step != 0 && balloon_actual_ != balloon_target_ && knob("balloon_stuck") != "1") {
      balloon_actual_ =
          balloon_actual_ < balloon_target_
              ? std::min(balloon_target_, balloon_actual_ + step)
              : std::max(balloon_target_, balloon_actual_ - std::min(step, balloon_actual_));
    }
    out.set_name(launch_.name());
    out.set_vmid(launch_.vmid());
    out.set_memory_bytes(memory_);
    uint64_t held = balloon_actual_ + reclaimed_;
    uint64_t fake_rss = knob_number("rss");
    out.mutable_host()->set_rss_bytes(fake_rss == 0 ? rss_bytes()
                                                    : (fake_rss > held ? fake_rss - held : 0));
    out.mutable_host()->set_memfd_allocated_bytes(resident());
    out.mutable_pages()->set_resident(resident() / 4096);
    out.mutable_pages()->set_ballooned(balloon_actual_ / 4096);
    out.mutable_pages()->set_reclaimed(reclaimed_ / 4096);
    balloon(*out.mutable_balloon());
    uint64_t in_use = std::min(working_set(), resident());
    (*out.mutable_balloon()->mutable_guest_stats())["available-memory"] = resident() - in_use;
    out.mutable_balloon()->set_guest_stats_unix_ns(unix_ns());
    if (has_reclaim()) {
      reclaim_stats(*out.mutable_reclaim());
      out.mutable_working_set()->set_estimate_bytes(in_use);
    }
    out.mutable_tlb()->set_flushes_all(flushes_);
    out.set_time_unix_ns(unix_ns());
  }

  bool forwarded(const v1::IpaRange& range) const {
    if (forward_all_) {
      return true;
    }
    for (const auto& filter : filters_) {
      if (range.start() < filter.start() + filter.size() &&
          filter.start() < range.start() + range.size()) {
        return true;
      }
    }
    return false;
  }

  void notifier_event(const v1::IpaRange& range, v1::ChangeReason reason) {
    ++invalidations_;
    for (auto phase : {v1::NOTIFIER_PHASE_START, v1::NOTIFIER_PHASE_END}) {
      sv::ToDaemon out;
      auto* event = out.mutable_event()->mutable_notifier();
      event->set_time_unix_ns(unix_ns());
      event->set_sequence(invalidations_);
      *event->mutable_range() = range;
      event->set_reason(reason);
      event->set_phase(phase);
      send(out);
    }
  }

  void invalidate(const v1::IpaRange& range, v1::ChangeReason reason) {
    if (forwarded(range)) {
      notifier_event(
          range, reason == v1::CHANGE_REASON_UNSPECIFIED ? v1::CHANGE_REASON_SHOOTDOWN : reason);
    }
  }

  // fake.notifier_rate events a second over guest RAM, page by page.
  void emit_notifier_events() {
    uint64_t rate = knob_number("notifier_rate");
    if (rate == 0 || (!forward_all_ && filters_.empty())) {
      emitted_since_ = Clock::now();
      emitted_ = 0;
      return;
    }
    auto elapsed = std::chrono::duration<double>(Clock::now() - emitted_since_).count();
    while (static_cast<double>(emitted_) < elapsed * static_cast<double>(rate)) {
      v1::IpaRange range;
      range.set_start((next_page_++ % (memory_ / 4096)) * 4096);
      range.set_size(4096);
      if (forwarded(range)) {
        notifier_event(range, v1::CHANGE_REASON_AGING);
      }
      emitted_ += 2;
    }
  }

  void fault(uint64_t ipa, bool write) {
    sv::ToDaemon out;
    auto* record = out.mutable_event()->mutable_fault();
    record->set_time_unix_ns(unix_ns());
    record->set_vm(launch_.name());
    record->set_vmid(launch_.vmid());
    record->set_ipa(ipa);
    record->set_access(write ? v1::ACCESS_WRITE : v1::ACCESS_READ);
    record->set_size(4);
    record->set_kind(v1::FAULT_KIND_MMIO_UNBACKED);
    record->set_resolution(v1::FAULT_RESOLUTION_EMULATED);
    record->set_latency_ns(500);
    send(out);
  }

  int fd_;
  sv::Launch launch_;
  std::map<std::string, std::string> knobs_;
  uint64_t memory_ = 0;
  uint64_t balloon_target_ = 0;
  uint64_t balloon_actual_ = 0;
  uint64_t flushes_ = 0;
  uint64_t invalidations_ = 0;
  uint64_t reclaimed_ = 0;
  uint64_t epochs_ = 0;
  std::string reclaim_policy_;  // the spec's, then what set_policy asked
  bool forward_all_ = false;
  std::vector<v1::IpaRange> filters_;
  Clock::time_point started_at_;
  Clock::time_point emitted_since_ = Clock::now();
  uint64_t emitted_ = 0;
  uint64_t next_page_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int fd = -1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--channel-fd") == 0) {
      fd = std::atoi(argv[i + 1]);
    }
  }
  if (fd < 0) {
    std::fprintf(stderr, "usage: hvmm-fake-vm --channel-fd N\n");
    return 120;
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // like hvmm-vm: never outlive the daemon
  return FakeVm(fd).run();
}
