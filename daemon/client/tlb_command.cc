// tlb shootdown NAME --stage 1|2: stage 2 drops the VMM's and KVM's translations of an IPA
// range (--range); stage 1 has the guest kernel flush on every vCPU (--scope kernel, or a
// held workload's address space or range: --workload, --va, --length).
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

struct ShootdownArgs {
  std::string name;
  unsigned stage = 0;
  std::string range;
  std::string scope;
  unsigned workload = 0;
  std::string va;
  std::string length;
};

// The stage-1 target from --scope and its companions; each must fit the scope.
Result<v1::Stage1Target> stage1_target(const ShootdownArgs& args) {
  v1::Stage1Target target;
  const std::string scope = args.scope.empty() ? "kernel" : args.scope;
  if (scope == "kernel") {
    target.set_scope(v1::STAGE1_SCOPE_KERNEL_ALL);
  } else if (scope == "space") {
    target.set_scope(v1::STAGE1_SCOPE_ADDRESS_SPACE);
  } else if (scope == "range") {
    target.set_scope(v1::STAGE1_SCOPE_RANGE);
  } else {
    return make_error(ErrorCode::kInvalidArgument, "--scope {}: must be kernel, range or space",
                      scope);
  }
  const bool needs_workload = scope != "kernel";
  if (needs_workload && args.workload == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--scope {}: needs --workload ID (a held workload)", scope);
  }
  if (!needs_workload && args.workload != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--workload: only with --scope range or space (not {})", scope);
  }
  target.set_workload(args.workload);
  const bool range_flags = !args.va.empty() || !args.length.empty();
  if (scope == "range" ? args.va.empty() || args.length.empty() : range_flags) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--va and --length: both with --scope range, and only with it (got --scope "
                      "{})",
                      scope);
  }
  if (scope == "range") {
    auto va = address_value("--va", args.va);
    HVMM_TRY(va);
    auto length = size_value("--length", args.length);
    HVMM_TRY(length);
    target.set_va(*va);
    target.set_length(*length);
  }
  return target;
}

// The request from the flags: each flag belongs to one stage.
Result<v1::TlbShootdownRequest> shootdown_request(const ShootdownArgs& args) {
  v1::TlbShootdownRequest request;
  request.set_name(args.name);
  const bool stage1_flags =
      !args.scope.empty() || args.workload != 0 || !args.va.empty() || !args.length.empty();
  if (args.stage == 2) {
    if (stage1_flags) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--scope, --workload, --va and --length are for --stage 1");
    }
    request.set_stage(v1::TLB_STAGE_2);
    if (!args.range.empty()) {
      auto range = range_value("--range", args.range);
      HVMM_TRY(range);
      request.mutable_range()->set_start(range->start);
      request.mutable_range()->set_size(range->size);
    }
    return request;
  }
  if (!args.range.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--range is for --stage 2 (stage 1 takes --scope range --va --length)");
  }
  request.set_stage(v1::TLB_STAGE_1);
  auto target = stage1_target(args);
  HVMM_TRY(target);
  *request.mutable_stage1() = *target;
  return request;
}

// What was done, in one line.
std::string result_text(const std::string& name, const v1::TlbShootdownResponse& response) {
  const std::string latency = args::human_duration_ns(response.latency_ns());
  if (response.has_stage2()) {
    const v1::Stage2ShootdownResult& r = response.stage2();
    return fmt::format(
        "stage-2 shootdown of {}: {} ({} pages), {} TLB entries dropped, mechanism {}; KVM 4K "
        "pages {} -> {}, 2M pages {} -> {}; latency {}",
        name, format_range(r.range().start(), r.range().size()), r.pages(), r.tlb_entries_dropped(),
        r.mechanism().empty() ? "-" : r.mechanism(), r.kvm_before().pages_4k(),
        r.kvm_after().pages_4k(), r.kvm_before().pages_2m(), r.kvm_after().pages_2m(), latency);
  }
  const v1::Stage1ShootdownResult& r = response.stage1();
  return fmt::format("stage-1 shootdown of {}: {} on {} vCPUs, {} pages, guest {}; latency {}",
                     name, r.method().empty() ? "-" : r.method(), r.cpus(), r.pages(),
                     args::human_duration_ns(r.guest_ns()), latency);
}

int shootdown(Context& context, const ShootdownArgs& args) {
  auto request = shootdown_request(args);
  if (!request) {
    return context.bad_argument(request.error().message);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::TlbShootdownResponse response;
  auto call = context.call();
  grpc::Status status =
      v1::TlbService::NewStub(channel)->Shootdown(call.get(), *request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    context.io().out << result_text(args.name, response) << "\n";
  }
  return 0;
}

}  // namespace

void add_tlb_commands(CLI::App& app, Context& context) {
  CLI::App* tlb = add_top_command(app, "tlb");
  tlb->require_subcommand(1);
  auto args = std::make_shared<ShootdownArgs>();
  CLI::App* command = tlb->add_subcommand(
      "shootdown", "Invalidate cached translations: stage 1 in the guest, stage 2 in the VMM");
  add_vm_name(*command, args->name);
  command
      ->add_option("--stage", args->stage,
                   "1: guest virtual (the guest kernel flushes); "
                   "2: guest physical (the VMM and KVM)")
      ->required()
      ->check(CLI::IsMember({1u, 2u}))
      ->type_name("1|2");
  command->add_option("--range", args->range, "Stage 2: the IPA range (default all guest RAM)")
      ->type_name("START:SIZE");
  command
      ->add_option("--scope", args->scope,
                   "Stage 1: kernel (everything, default), space (a workload's address "
                   "space) or range (--va, --length in it)")
      ->type_name("kernel|range|space");
  command->add_option("--workload", args->workload, "Stage 1: the held workload's id")
      ->type_name("ID");
  command->add_option("--va", args->va, "Stage 1 range: the first virtual address")
      ->type_name("ADDR");
  command->add_option("--length", args->length, "Stage 1 range: its length")->type_name("SIZE");
  command->callback([&context, args] {
    context.action = [&context, args] { return shootdown(context, *args); };
  });
}

}  // namespace hvmm::client
