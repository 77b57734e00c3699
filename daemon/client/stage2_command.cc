// stage2 dump NAME [--range START:SIZE] [--page-size N] [--svg FILE [--table]]: every page of
// DumpStage2, followed by its page tokens, as one table (or, with --json, one response holding
// every mapping), or drawn as an SVG picture (daemon/svg) into FILE ("-": stdout).
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/client/text.h"
#include "hvmm/daemon/svg/stage2_svg.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;
namespace svg = hvmm::daemon::svg;

struct DumpArgs {
  std::string name;
  std::string range;
  unsigned page_size = 0;
  std::string svg;     // empty: no picture
  bool table = false;  // with --svg: print the table (or the JSON) too
};

// "rw", "r-", "-w", "--".
std::string permissions_text(v1::Permissions permissions) {
  switch (permissions) {
    case v1::PERMISSIONS_READ_ONLY:
      return "r-";
    case v1::PERMISSIONS_WRITE_ONLY:
      return "-w";
    case v1::PERMISSIONS_READ_WRITE:
      return "rw";
    default:
      return "--";
  }
}

// The page-state flags of a mapping: "young,write-tracked,pinned" or "-".
std::string flags_text(const v1::Mapping& mapping) {
  std::string flags;
  auto add = [&flags](bool set, const char* word) {
    if (set) {
      flags += (flags.empty() ? "" : ",") + std::string(word);
    }
  };
  add(mapping.young(), "young");
  add(mapping.state().write_tracked(), "write-tracked");
  add(mapping.state().pinned(), "pinned");
  return flags.empty() ? "-" : flags;
}

// The block size a mapping's largest block level stands for.
std::string block_text(uint32_t level) {
  return level == 0 ? "4K" : level == 1 ? "2M" : level == 2 ? "1G" : fmt::format("level {}", level);
}

void print_dump(std::ostream& out, const std::string& name, const v1::Stage2Dump& dump) {
  out << fmt::format("{}: vmid {}, {}-bit IPA space, {} mappings\n", name, dump.vmid(),
                     dump.ipa_bits(), dump.mappings_size());
  Table table(
      {"IPA RANGE", "SIZE", "HOST OFFSET", "PERM", "EXEC", "TYPE", "BACKING", "FLAGS", "BLOCK"});
  for (const v1::Mapping& m : dump.mappings()) {
    table.add({format_range(m.range().start(), m.range().size()),
               args::human_size(m.range().size()), hex(m.host_offset()),
               permissions_text(m.permissions()), m.executable() ? "x" : "-",
               enum_word(v1::MemoryType_Name(m.memory_type()), "MEMORY_TYPE_"),
               enum_word(v1::Backing_Name(m.state().backing()), "BACKING_"), flags_text(m),
               block_text(m.largest_block_level())});
  }
  table.print(out);
}

// Draw `dump` into args.svg ("-": stdout); errors name the flag and the file.
int write_svg(Context& context, const DumpArgs& args, const v1::Stage2Dump& dump) {
  svg::PictureOptions options;
  options.vm_name = args.name;
  auto picture = svg::render_stage2_svg(dump, options);
  if (!picture) {
    context.io().err << "hvmm: --svg: the daemon's dump cannot be drawn: "
                     << picture.error().message << "\n";
    return kExitFailed;
  }
  if (args.svg == "-") {
    context.io().out << *picture;
    return 0;
  }
  std::ofstream file(args.svg, std::ios::binary | std::ios::trunc);
  if (file) {
    file << *picture;
    file.close();
  }
  if (!file) {
    context.io().err << "hvmm: --svg: cannot write '" << args.svg << "': " << std::strerror(errno)
                     << "\n";
    return kExitFailed;
  }
  return 0;
}

// Ask for pages until the token is empty; a token seen twice would never end.
int dump(Context& context, const DumpArgs& args) {
  if (args.svg == "-" && (args.table || context.json())) {
    return context.bad_argument(
        "--svg -: the picture goes to stdout, so --table and --json cannot go there too");
  }
  if (args.table && args.svg.empty()) {
    return context.bad_argument("--table: only with --svg (the table is printed anyway)");
  }
  v1::DumpStage2Request request;
  request.set_name(args.name);
  request.set_page_size(args.page_size);
  if (!args.range.empty()) {
    auto range = range_value("--range", args.range);
    if (!range) {
      return context.bad_argument(range.error().message);
    }
    request.mutable_range()->set_start(range->start);
    request.mutable_range()->set_size(range->size);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto stub = v1::MemoryService::NewStub(channel);
  v1::DumpStage2Response all;
  std::set<std::string> tokens;
  do {
    v1::DumpStage2Response page;
    auto call = context.call();
    grpc::Status status = stub->DumpStage2(call.get(), request, &page);
    if (!status.ok()) {
      return context.finish(status);
    }
    all.mutable_dump()->set_ipa_bits(page.dump().ipa_bits());
    all.mutable_dump()->set_vmid(page.dump().vmid());
    if (page.dump().memory_bytes() != 0) {
      all.mutable_dump()->set_memory_bytes(page.dump().memory_bytes());
    }
    for (v1::DeviceRegion& device : *page.mutable_dump()->mutable_devices()) {
      *all.mutable_dump()->add_devices() = std::move(device);
    }
    for (v1::Mapping& mapping : *page.mutable_dump()->mutable_mappings()) {
      *all.mutable_dump()->add_mappings() = std::move(mapping);
    }
    if (!page.next_page_token().empty() && !tokens.insert(page.next_page_token()).second) {
      context.io().err << "hvmm: the daemon returned page token '" << page.next_page_token()
                       << "' twice; the dump stops here\n";
      return kExitFailed;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (!args.svg.empty()) {
    const int status = write_svg(context, args, all.dump());
    if (status != 0 || (!args.table && !context.json())) {
      return status;
    }
  }
  if (context.json()) {
    context.print_json(all);
  } else {
    print_dump(context.io().out, args.name, all.dump());
  }
  return 0;
}

}  // namespace

void add_stage2_commands(CLI::App& app, Context& context) {
  CLI::App* stage2 = add_top_command(app, "stage2");
  stage2->require_subcommand(1);
  auto args = std::make_shared<DumpArgs>();
  CLI::App* command =
      stage2->add_subcommand("dump", "Dump the stage-2 map: ranges, attributes and page state");
  add_vm_name(*command, args->name);
  command->add_option("--range", args->range, "Only this IPA range (e.g. 0x100000:2M)")
      ->type_name("START:SIZE");
  command
      ->add_option("--page-size", args->page_size,
                   "Mappings per request (1..10000; default the daemon's 1000)")
      ->type_name("N");
  command
      ->add_option("--svg", args->svg,
                   "Draw the dump as an SVG picture into FILE ('-': stdout) instead of the table")
      ->type_name("FILE");
  command->add_flag("--table", args->table, "With --svg: print the table (or --json) as well");
  command->callback(
      [&context, args] { context.action = [&context, args] { return dump(context, *args); }; });
}

}  // namespace hvmm::client
