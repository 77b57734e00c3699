// Integration tests: `hvmm run` boots PVH test guests under real KVM; exact console output
// and exit status are asserted.
#include <gtest/gtest.h>

#include "hvmm/vmm/machine/exit_status.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::run_hvmm;
using testing::RunResult;
using testing::slurp;
using testing::TempPath;

const char kHello[] = "Hello from the hvmm test guest\n";

// The hello guest prints its line on COM1 and exits with status 0 through port 0xf4.
TEST(Boot, HelloOverSerial) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("hello")});
  EXPECT_EQ(run.out, kHello);
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.err, "");
}

// The same guest linked as an i386 ELF32 boots the same way.
TEST(Boot, HelloElf32) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("hello32")});
  EXPECT_EQ(run.out, kHello);
  EXPECT_EQ(run.status, 0) << run.err;
}

// Without --kernel the bundled kernel boots (the hello guest until the real kernel exists).
TEST(Boot, BundledKernel) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run"});
  EXPECT_FALSE(run.timed_out);
  if (HVMM_BUNDLED_KERNEL_IS_HELLO) {
    EXPECT_EQ(run.out, kHello);
    EXPECT_EQ(run.status, 0) << run.err;
  } else {
    EXPECT_LT(run.status, kExitBadArguments) << run.err;
  }
}

// The virtio-mmio device `hvmm run` gives every VM by default (the balloon; the control
// channel only exists for a host that drives it), as the Machine appends it to the command
// line.
constexpr const char* kAnnounced = "virtio_mmio.device=4K@0xd0000000:5";

// The guest reads hvm_start_info: magic, version, command line, one RAM entry summing to
// --memory, no modules; its exit status 42 becomes hvmm's.
TEST(Boot, StartInfo) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("start_info"), "--memory", "64M", "--cmdline",
                            "console=ttyS0 hvmm.test=1"});
  EXPECT_EQ(run.out,
            "magic=336ec578\n"
            "version=00000001\n"
            "cmdline=console=ttyS0 hvmm.test=1 " +
                std::string(kAnnounced) + "\n" +
                "memmap entries=00000001\n"
                "ram=0000000004000000\n"
                "modules=00000000\n");
  EXPECT_EQ(run.status, 42) << run.err;
}

// With 5 GiB the memory map has two RAM entries around the MMIO hole, summing to 5 GiB.
TEST(Boot, StartInfoAboveFourGiB) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("start_info"), "--memory", "5G"});
  EXPECT_EQ(run.out,
            "magic=336ec578\n"
            "version=00000001\n"
            "cmdline=" +
                std::string(kAnnounced) + "\n" +
                "memmap entries=00000002\n"
                "ram=0000000140000000\n"
                "modules=00000000\n");
  EXPECT_EQ(run.status, 42) << run.err;
}

// An initrd becomes module 0: the guest sees its size and its first bytes.
TEST(Boot, InitrdIsModuleZero) {
  HVMM_SKIP_WITHOUT_KVM();
  TempPath initrd("initrd");
  {
    std::ofstream file(initrd.path);
    file << "INITRD01 and the rest of the ramdisk";
  }
  RunResult run = run_hvmm({"run", "--kernel", guest("start_info"), "--initrd", initrd.path});
  EXPECT_EQ(run.out,
            "magic=336ec578\n"
            "version=00000001\n"
            "cmdline=" +
                std::string(kAnnounced) + "\n" +
                "memmap entries=00000001\n"
                "ram=0000000008000000\n"
                "modules=00000001\n"
                "module0 size=00000024 data=INITRD01\n");
  EXPECT_EQ(run.status, 42) << run.err;
}

// --console-log receives exactly what stdout does.
TEST(Boot, ConsoleLog) {
  HVMM_SKIP_WITHOUT_KVM();
  TempPath log("console");
  RunResult run = run_hvmm({"run", "--kernel", guest("hello"), "--console-log", log.path});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, kHello);
  EXPECT_EQ(slurp(log.path), kHello);
}

}  // namespace
}  // namespace hvmm::vmm
