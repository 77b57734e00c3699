/* kvm_smoke: the first check inside the nested-KVM guest, before any hvmm test. It opens
   /dev/kvm, checks the API version and runs a real-mode guest that writes "OK" to port 0xe9
   and halts. Exits 0 when that is exactly what KVM reports, 1 otherwise, with the reason, so
   a broken L1 KVM is told apart from a broken hvmm. Built static: the initramfs has no libc
   of its own beyond what the test binaries need. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

enum { kGuestMemSize = 0x10000, kCodeAt = 0x1000, kMaxExits = 8 };

/* Report `what` with errno and fail. */
static int fail(const char* what) {
  printf("kvm_smoke: FAIL: %s: %s\n", what, strerror(errno));
  return 1;
}

/* Point a fresh vCPU at `kCodeAt` in real mode (CS base 0). */
static int enter_real_mode(int vcpu) {
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
    return fail("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
    return fail("KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = kCodeAt, .rflags = 2};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
    return fail("KVM_SET_REGS");
  return 0;
}

/* Run the vCPU until it halts; the bytes it wrote to port 0xe9 go to `out`. */
static int run_until_halt(int vcpu, struct kvm_run* run, char* out, size_t out_size) {
  size_t used = 0;
  for (int exits = 0; exits < kMaxExits; ++exits) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0)
      return fail("KVM_RUN");
    if (run->exit_reason == KVM_EXIT_HLT)
      return 0;
    if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0xe9 || used + 1 >= out_size) {
      printf("kvm_smoke: FAIL: unexpected exit reason %u\n", run->exit_reason);
      return 1;
    }
    out[used++] = *((char*)run + run->io.data_offset);
    out[used] = '\0';
  }
  printf("kvm_smoke: FAIL: no hlt after %d exits\n", kMaxExits);
  return 1;
}

/* Create a one-vCPU VM over `mem` and run it to its hlt. */
static int run_guest(int kvm, uint8_t* mem, char* out, size_t out_size) {
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0)
    return fail("KVM_CREATE_VM");
  struct kvm_userspace_memory_region region = {.slot = 0,
                                               .guest_phys_addr = 0,
                                               .memory_size = kGuestMemSize,
                                               .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
    return fail("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0)
    return fail("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0)
    return fail("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run* run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED)
    return fail("mmap kvm_run");
  if (enter_real_mode(vcpu) != 0)
    return 1;
  return run_until_halt(vcpu, run, out, out_size);
}

/* Open KVM, run the guest, compare what it wrote. */
int main(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0)
    return fail("open /dev/kvm");
  int version = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    printf("kvm_smoke: FAIL: KVM API version %d, want %d\n", version, KVM_API_VERSION);
    return 1;
  }
  uint8_t* mem =
      mmap(NULL, kGuestMemSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    return fail("mmap guest memory");
  /* mov al,'O'; out 0xe9,al; mov al,'K'; out 0xe9,al; hlt */
  const uint8_t code[] = {0xb0, 'O', 0xe6, 0xe9, 0xb0, 'K', 0xe6, 0xe9, 0xf4};
  memcpy(mem + kCodeAt, code, sizeof code);
  char out[16] = "";
  if (run_guest(kvm, mem, out, sizeof out) != 0)
    return 1;
  if (strcmp(out, "OK") != 0) {
    printf("kvm_smoke: FAIL: guest wrote \"%s\", want \"OK\"\n", out);
    return 1;
  }
  printf("kvm_smoke: ok (API version %d, real-mode guest wrote \"%s\" and halted)\n", version, out);
  return 0;
}
