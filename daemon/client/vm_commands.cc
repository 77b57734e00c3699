// vm create / start / stop / delete / list / get / console.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/vm_text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

// The flags of `vm create`, as typed.
struct CreateArgs {
  std::string name;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string memory;
  unsigned vcpus = 0;
  std::string balloon;
  bool free_page_reporting = false;
  unsigned balloon_stats_interval = 0;
  bool no_balloon = false;
  std::optional<std::string> reclaim;
  std::string fault_around;
  std::string console_log_max;
  std::string dirty_tracking;
  bool no_control = false;
  bool start = false;
  // The host memory policy's say over this VM (VmSpec.policy); set when one is given.
  std::string floor;
  std::optional<int32_t> priority;
  bool policy_exempt = false;
};

// The sizes of `vm create` into the spec; errors name the flag.
Result<void> fill_sizes(const CreateArgs& args, v1::VmSpec& spec) {
  if (!args.memory.empty()) {
    auto memory = size_value("--memory", args.memory);
    HVMM_TRY(memory);
    spec.set_memory_bytes(*memory);
  }
  if (!args.balloon.empty()) {
    auto target = size_value("--balloon", args.balloon);
    HVMM_TRY(target);
    spec.mutable_balloon()->set_initial_target_bytes(*target);
  }
  if (!args.fault_around.empty()) {
    auto window = size_value("--fault-around", args.fault_around);
    HVMM_TRY(window);
    spec.set_fault_around_bytes(*window);
  }
  if (!args.console_log_max.empty()) {
    auto cap = size_value("--console-log-max", args.console_log_max);
    HVMM_TRY(cap);
    spec.set_console_log_max_bytes(*cap);
  }
  return Ok();
}

// --floor, --priority, --policy-exempt into VmSpec.policy (left unset when none is given).
Result<void> fill_policy(const CreateArgs& args, v1::VmSpec& spec) {
  if (!args.floor.empty()) {
    auto floor = size_value("--floor", args.floor);
    HVMM_TRY(floor);
    spec.mutable_policy()->set_floor_bytes(*floor);
  }
  if (args.priority) {
    spec.mutable_policy()->set_priority(*args.priority);
  }
  if (args.policy_exempt) {
    spec.mutable_policy()->set_exempt(true);
  }
  return Ok();
}

// A path as the daemon should read it: the daemon runs elsewhere (its own working
// directory), so a relative path is made absolute against the client's.
std::string daemon_path(const std::string& path) {
  if (path.empty() || path.front() == '/') {
    return path;
  }
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

// CreateVmRequest from the flags; what the daemon checks (ranges, files) is left to it.
Result<v1::CreateVmRequest> create_request(const CreateArgs& args) {
  v1::CreateVmRequest request;
  request.set_name(args.name);
  request.set_start(args.start);
  v1::VmSpec& spec = *request.mutable_spec();
  HVMM_TRY(fill_sizes(args, spec));
  HVMM_TRY(fill_policy(args, spec));
  spec.set_kernel(daemon_path(args.kernel));
  spec.set_initrd(daemon_path(args.initrd));
  spec.set_cmdline(args.cmdline);
  spec.set_vcpus(args.vcpus);
  v1::BalloonSpec& balloon = *spec.mutable_balloon();
  balloon.set_disabled(args.no_balloon);
  balloon.set_free_page_reporting(args.free_page_reporting);
  balloon.set_stats_interval_seconds(args.balloon_stats_interval);
  if (args.reclaim) {
    spec.set_reclaim_policy(*args.reclaim);
  }
  if (args.no_control) {
    spec.set_control_channel(false);
  }
  if (!args.dirty_tracking.empty() && args.dirty_tracking != "log" &&
      args.dirty_tracking != "ring") {
    return make_error(ErrorCode::kInvalidArgument, "--dirty-tracking {}: must be log or ring",
                      args.dirty_tracking);
  }
  spec.set_dirty_tracking(args.dirty_tracking);
  return request;
}

int vm_create(Context& context, const CreateArgs& args) {
  auto request = create_request(args);
  if (!request) {
    return context.bad_argument(request.error().message);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::CreateVmResponse response;
  auto call = context.call();
  grpc::Status status = v1::VmService::NewStub(channel)->Create(call.get(), *request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    print_vm(context.io().out, response.vm());
  }
  return 0;
}

// The flags of `vm create`.
void declare_create(CLI::App& vm, Context& context) {
  auto args = std::make_shared<CreateArgs>();
  CLI::App* create = vm.add_subcommand("create", "Create a VM (and with --start, start it)");
  add_vm_name(*create, args->name);
  create
      ->add_option("--kernel", args->kernel,
                   "PVH ELF kernel on the daemon's host (default: bundled)")
      ->type_name("ELF");
  create->add_option("--initrd", args->initrd, "Initial ramdisk on the daemon's host")
      ->type_name("FILE");
  create->add_option("--cmdline", args->cmdline, "Kernel command line")->type_name("STR");
  create->add_option("--memory", args->memory, "Guest RAM, with a K, M or G suffix (default 128M)")
      ->type_name("SIZE");
  create->add_option("--vcpus", args->vcpus, "vCPUs (default 1)")->type_name("N");
  create->add_option("--balloon", args->balloon, "Initial balloon target (below --memory)")
      ->type_name("SIZE");
  create->add_flag("--free-page-reporting", args->free_page_reporting,
                   "Offer free page reporting to the guest");
  create
      ->add_option("--balloon-stats-interval", args->balloon_stats_interval,
                   "Ask the guest for memory statistics every SECONDS (0: on request)")
      ->type_name("SECONDS");
  create->add_flag("--no-balloon", args->no_balloon, "No virtio-balloon device");
  create
      ->add_option_function<std::string>(
          "--reclaim", [args](const std::string& policy) { args->reclaim = policy; },
          "Reclaim without the guest's help, POLICY in `hvmm run --reclaim` syntax (\"\": default)")
      ->type_name("POLICY");
  create
      ->add_option("--fault-around", args->fault_around,
                   "Largest fault-around window: a power of two from 4K to 2M, or 0")
      ->type_name("MAX");
  create
      ->add_option("--console-log-max", args->console_log_max,
                   "Cap of the VM's console log (0: none; default 64M)")
      ->type_name("SIZE");
  create
      ->add_option("--dirty-tracking", args->dirty_tracking,
                   "KVM dirty tracking for the dirty log: log or ring")
      ->type_name("log|ring");
  create->add_flag("--no-control", args->no_control,
                   "No control channel (no stage-1 shootdown, no guest workloads)");
  create
      ->add_option("--floor", args->floor,
                   "The host policy never takes the VM's RAM below SIZE (default: a quarter)")
      ->type_name("SIZE");
  create
      ->add_option_function<int32_t>(
          "--priority", [args](int32_t priority) { args->priority = priority; },
          "Host policy priority: higher gives later and gets back first (default 0)")
      ->type_name("N");
  create->add_flag("--policy-exempt", args->policy_exempt,
                   "The host memory policy leaves this VM alone");
  create->add_flag("--start", args->start, "Start the VM once created");
  create->callback([&context, args] {
    context.action = [&context, args] { return vm_create(context, *args); };
  });
}

// A unary VmService call on `name` printed as the VM's one-line summary.
template <typename Request, typename Response, typename Method>
int vm_call(Context& context, const Request& request, Method method,
            std::chrono::milliseconds wait = {}) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto stub = v1::VmService::NewStub(channel);
  Response response;
  auto call = context.call(wait);
  grpc::Status status = ((*stub).*method)(call.get(), request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else if constexpr (requires { response.vm(); }) {
    context.io().out << vm_summary_line(response.vm()) << "\n";
  } else {
    context.io().out << "deleted " << request.name() << "\n";
  }
  return 0;
}

// vm start NAME [--wait].
void declare_start(CLI::App& vm, Context& context) {
  auto request = std::make_shared<v1::StartVmRequest>();
  auto name = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(false);
  CLI::App* start = vm.add_subcommand("start", "Start a VM's process");
  add_vm_name(*start, *name);
  start->add_flag("--wait", *wait, "Return once the VM runs (or failed)");
  start->callback([&context, request, name, wait] {
    request->set_name(*name);
    request->set_wait(*wait);
    context.action = [&context, request] {
      return vm_call<v1::StartVmRequest, v1::StartVmResponse>(context, *request,
                                                              &v1::VmService::Stub::Start);
    };
  });
}

// vm stop NAME [--grace 10s] [--force].
void declare_stop(CLI::App& vm, Context& context) {
  struct StopArgs {
    std::string name;
    std::string grace;
    bool force = false;
  };
  auto args = std::make_shared<StopArgs>();
  CLI::App* stop =
      vm.add_subcommand("stop", "Stop a VM: the guest is asked to shut down, then killed");
  add_vm_name(*stop, args->name);
  stop->add_option("--grace", args->grace,
                   "How long the guest gets before it is killed (default 10s)")
      ->type_name("DURATION");
  stop->add_flag("--force", args->force, "Kill the VM process at once");
  stop->callback([&context, args] {
    context.action = [&context, args] {
      v1::StopVmRequest request;
      request.set_name(args->name);
      request.set_force(args->force);
      if (!args->grace.empty()) {
        auto grace = duration_ms_value("--grace", args->grace);
        if (!grace) {
          return context.bad_argument(grace.error().message);
        }
        request.set_grace_ms(*grace);
      }
      const auto wait = std::chrono::milliseconds(request.grace_ms() ? request.grace_ms() : 10'000);
      return vm_call<v1::StopVmRequest, v1::StopVmResponse>(context, request,
                                                            &v1::VmService::Stub::Stop, wait);
    };
  });
}

// vm delete NAME [--force].
void declare_delete(CLI::App& vm, Context& context) {
  auto request = std::make_shared<v1::DeleteVmRequest>();
  auto name = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  CLI::App* remove = vm.add_subcommand("delete", "Delete a VM (with --force, stop it first)");
  add_vm_name(*remove, *name);
  remove->add_flag("--force", *force, "Stop the VM first if it runs");
  remove->callback([&context, request, name, force] {
    request->set_name(*name);
    request->set_force(*force);
    context.action = [&context, request] {
      return vm_call<v1::DeleteVmRequest, v1::DeleteVmResponse>(context, *request,
                                                                &v1::VmService::Stub::Delete);
    };
  });
}

int vm_list(Context& context) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::ListVmsResponse response;
  auto call = context.call();
  grpc::Status status =
      v1::VmService::NewStub(channel)->List(call.get(), v1::ListVmsRequest(), &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    vm_table(response).print(context.io().out);
  }
  return 0;
}

int vm_get(Context& context, const std::string& name) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::GetVmRequest request;
  request.set_name(name);
  v1::GetVmResponse response;
  auto call = context.call();
  grpc::Status status = v1::VmService::NewStub(channel)->Get(call.get(), request, &response);
  if (!status.ok()) {
    return context.finish(status);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    print_vm(context.io().out, response.vm());
  }
  return 0;
}

// Lines as the guest printed them; missed lines are said on stderr.
int vm_console(Context& context, const v1::StreamConsoleRequest& request) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  grpc::ClientContext call;
  auto reader = v1::VmService::NewStub(channel)->StreamConsole(&call, request);
  v1::ConsoleLine line;
  while (reader->Read(&line)) {
    if (line.dropped_before() != 0) {
      context.io().err << "hvmm: " << line.dropped_before()
                       << " console lines dropped (this client read too slowly)\n";
    }
    if (context.json()) {
      context.print_json(line);
    } else {
      context.io().out << line.line() << "\n";
    }
    context.io().out.flush();
  }
  return context.finish(reader->Finish());
}

// vm list, vm get NAME, vm console NAME.
void declare_queries(CLI::App& vm, Context& context) {
  CLI::App* list = vm.add_subcommand("list", "List the daemon's VMs");
  list->callback([&context] { context.action = [&context] { return vm_list(context); }; });

  auto get_name = std::make_shared<std::string>();
  CLI::App* get = vm.add_subcommand("get", "Show one VM: state, VMID, exit, memory figures");
  add_vm_name(*get, *get_name);
  get->callback([&context, get_name] {
    context.action = [&context, get_name] { return vm_get(context, *get_name); };
  });

  auto request = std::make_shared<v1::StreamConsoleRequest>();
  auto name = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  auto history = std::make_shared<bool>(false);
  CLI::App* console = vm.add_subcommand("console", "Print a VM's console lines");
  add_vm_name(*console, *name);
  console->add_flag("--follow", *follow, "Keep printing new lines until the VM ends");
  console->add_flag("--history", *history, "First the lines kept so far (at most 1000)");
  console->callback([&context, request, name, follow, history] {
    request->set_name(*name);
    request->set_follow(*follow);
    request->set_history(*history);
    context.action = [&context, request] { return vm_console(context, *request); };
  });
}

}  // namespace

CLI::Option* add_vm_name(CLI::App& command, std::string& name) {
  return command.add_option("NAME", name, "The VM's name")->required();
}

void add_vm_commands(CLI::App& app, Context& context) {
  CLI::App* vm = add_top_command(app, "vm");
  vm->require_subcommand(1);
  declare_create(*vm, context);
  declare_start(*vm, context);
  declare_stop(*vm, context);
  declare_delete(*vm, context);
  declare_queries(*vm, context);
}

}  // namespace hvmm::client
