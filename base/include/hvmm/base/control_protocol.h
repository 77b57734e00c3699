// The hvmm control channel: how the host asks the guest kernel for work and reads the result.
//
// A virtio device of hvmm's own (virtio-mmio v2, device id kControlDeviceId, only
// VIRTIO_F_VERSION_1 offered) with two split virtqueues:
//   queue 0, requestq:  the driver keeps device-writable buffers of at least
//                       sizeof(ControlRequest) bytes posted; the device writes one request
//                       into a buffer and returns it (used length = sizeof(ControlRequest)).
//   queue 1, responseq: for every request the driver sends one device-readable buffer holding
//                       a ControlResponse with the request's tag; the device reads it and
//                       returns the buffer (used length 0).
// Requests are served in order, one at a time; the host may queue several. A request the
// guest cannot parse (bad magic, version or op) is answered with kBadRequest, never ignored,
// so the host never waits for an answer that will not come. The config space holds one le32,
// the protocol version (kControlVersion). Every field is little-endian; both ends are x86-64,
// so the structs are used as they are, and the static_asserts pin the layout.
//
// This header is shared by the VMM (vmm/devices/control) and the guest kernel, so the two
// cannot drift apart; vmm/devices/control/README.md documents the protocol for other drivers.
// Freestanding: the guest kernel includes it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvmm::control {

// Outside the virtio registry (OASIS virtio 1.2, section 5), so no stock driver binds to it.
inline constexpr uint32_t kControlDeviceId = 0x4856;    // "HV"
inline constexpr uint32_t kRequestMagic = 0x52435648;   // "HVCR"
inline constexpr uint32_t kResponseMagic = 0x53435648;  // "HVCS"
inline constexpr uint16_t kControlVersion = 1;
inline constexpr unsigned kRequestQueue = 0;
inline constexpr unsigned kResponseQueue = 1;

enum class Op : uint16_t {
  kPing = 1,             // no arguments; answers at once (measures the channel's round trip)
  kWorkloadStart = 2,    // WorkloadStartArgs -> WorkloadStartResult
  kWorkloadVerify = 3,   // WorkloadIdArgs -> WorkloadVerifyResult
  kWorkloadExit = 4,     // WorkloadIdArgs -> no result; the workload's memory is freed
  kMemStats = 5,         // no arguments -> MemStatsResult
  kTlbFlush = 6,         // TlbFlushArgs -> TlbFlushResult
  kShutdown = 7,         // ShutdownArgs; the guest answers, then ends with the exit status
  kWorkloadRewrite = 8,  // WorkloadRewriteArgs -> WorkloadRewriteResult
  kProbe = 9,            // ProbeArgs -> ProbeResult
};

enum class Status : int32_t {
  kOk = 0,
  kBadRequest = 1,      // bad magic, version or op
  kBadArguments = 2,    // arguments out of range (size 0, unknown kind or scope)
  kNoSuchWorkload = 3,  // the workload id names no held workload
  kOutOfMemory = 4,     // the guest could not allocate what the request needs
  kMismatch = 5,        // verify found pages whose contents differ from the pattern
  kBusy = 6,            // no room for another held workload
};

// Ring-3 workloads (guest/kernel/include/hvmm/guest/workloads.h).
enum class WorkloadKind : uint32_t {
  kTouchSequential = 1,  // write the pattern to every page in address order, read it back
  kTouchRandom = 2,      // the same, pages in a seeded random order
  kTouchMix = 3,         // the page mix of hvmm/base/pattern_mix.h, in page order, read back
};

inline constexpr uint32_t kWorkloadHold = 1u << 0;  // keep the process and its memory

// WorkloadRewriteArgs::flags: read the range (every word) instead of writing it.
inline constexpr uint32_t kRewriteReadOnly = 1u << 0;

// The longest kWorkloadRewrite (the channel serves nothing else meanwhile): 10 minutes.
inline constexpr uint32_t kRewriteMaxDurationMs = 600000;

enum class TlbScope : uint32_t {
  kRange = 1,         // [va, va + length) of a held workload's address space, on every CPU
  kAddressSpace = 2,  // all of a held workload's address space, on every CPU
  kKernelAll = 3,     // every CPU flushes everything, global entries included
};

struct WorkloadStartArgs {
  WorkloadKind kind;
  uint32_t flags;  // kWorkloadHold
  uint64_t bytes;  // rounded up to pages
  uint64_t seed;   // the pattern of page p is a function of (seed, p): verify recomputes it
};

struct WorkloadIdArgs {
  uint32_t workload;
};

struct TlbFlushArgs {
  TlbScope scope;
  uint32_t workload;  // for kRange and kAddressSpace
  uint64_t va;
  uint64_t length;
};

// Rewrite pages [first_page, first_page + pages) of a held workload with its own contents
// (so a later verify still passes), round after round, until duration_ms has passed (at
// least one round); with kRewriteReadOnly read them instead. Out of the workload's range,
// pages 0, an unknown flag or a duration above kRewriteMaxDurationMs: kBadArguments.
struct WorkloadRewriteArgs {
  uint32_t workload;
  uint32_t flags;  // kRewriteReadOnly
  uint64_t first_page;
  uint64_t pages;
  uint32_t duration_ms;
  uint32_t reserved;  // 0
};

// Access 4 bytes at a guest-physical address through an uncached kernel mapping: RAM, a
// device, or nothing at all (the VMM then logs an unbacked access). `ipa` must be 4-byte
// aligned and below 2^52, `flags` only kProbeWrite, else kBadArguments.
inline constexpr uint32_t kProbeWrite = 1u << 0;
struct ProbeArgs {
  uint64_t ipa;
  uint32_t flags;  // kProbeWrite
  uint32_t value;  // written with kProbeWrite
};

struct ShutdownArgs {
  uint32_t exit_status;  // the byte the guest writes to port 0xf4
};

struct ControlRequest {
  uint32_t magic;    // kRequestMagic
  uint16_t version;  // kControlVersion
  Op op;
  uint64_t tag;  // chosen by the host, echoed in the response
  union {
    uint8_t raw[48];
    WorkloadStartArgs workload_start;
    WorkloadIdArgs workload_id;
    TlbFlushArgs tlb_flush;
    ShutdownArgs shutdown;
    WorkloadRewriteArgs workload_rewrite;
    ProbeArgs probe;
  } args;
};

struct WorkloadStartResult {
  uint32_t workload;  // id for verify/exit/flush when held; 0 when not held
  uint32_t cpu;       // the CPU it ran on
  uint64_t pages;     // pages touched
  uint64_t checksum;  // over every word written, in page order
  uint64_t duration_ns;
};

struct WorkloadVerifyResult {
  uint64_t pages;             // pages checked
  uint64_t mismatched_pages;  // pages whose contents differ from the pattern
  uint64_t checksum;          // recomputed from memory, in page order
  uint64_t duration_ns;
};

struct WorkloadRewriteResult {
  uint64_t rounds;  // passes over the whole range
  uint64_t pages;   // pages written (or read): rounds * the range's pages
  uint64_t duration_ns;
};

struct MemStatsResult {  // all in 4 KiB pages
  uint64_t total;
  uint64_t free;
  uint64_t balloon;   // pages the balloon holds
  uint64_t reported;  // free pages reported to the host and not reused since
  uint64_t user;      // pages held by ring-3 workloads
  uint64_t slab;
};

struct TlbFlushResult {
  uint32_t cpus;    // CPUs that carried the flush out, the caller included
  uint32_t method;  // 1 INVLPG per page, 2 whole PCID / address space, 3 full flush
  uint64_t pages;   // pages named by the request (0 for whole flushes)
  uint64_t duration_ns;
};

struct ProbeResult {
  uint32_t value;  // read (or, with kProbeWrite, the value written)
  uint32_t reserved;
};

struct ControlResponse {
  uint32_t magic;  // kResponseMagic
  uint16_t version;
  Op op;
  uint64_t tag;
  Status status;
  uint32_t reserved;
  uint64_t latency_ns;  // guest time from taking the request to writing the response
  union {
    uint8_t raw[64];
    WorkloadStartResult workload_start;
    WorkloadVerifyResult workload_verify;
    MemStatsResult mem_stats;
    TlbFlushResult tlb_flush;
    WorkloadRewriteResult workload_rewrite;
    ProbeResult probe;
  } result;
};

static_assert(sizeof(WorkloadStartArgs) == 24);
static_assert(sizeof(TlbFlushArgs) == 24);
static_assert(sizeof(ProbeArgs) == 16);
static_assert(sizeof(WorkloadRewriteArgs) == 32);
static_assert(sizeof(WorkloadRewriteResult) == 24);
static_assert(sizeof(ControlRequest) == 64);
static_assert(offsetof(ControlRequest, args) == 16);
static_assert(sizeof(ControlResponse) == 96);
static_assert(offsetof(ControlResponse, result) == 32);

}  // namespace hvmm::control
