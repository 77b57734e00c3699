// Bus: an address space (port I/O or MMIO) on which devices claim ranges.
//
// A device registers [base, base + size) once, before any vCPU runs; overlapping claims are
// refused with an Error naming both devices. find() is O(log n) (an ordered map keyed by the
// range's base) and lock-free: the bus does not change once the VM runs, so vCPU threads
// look up concurrently. An access that no device claims is the caller's business (the Machine
// keeps its fault path for it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "hvmm/base/result.h"

namespace hvmm::vmm {

// BusDevice is what the bus hands an access to; offsets are relative to its range's base.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // The guest reads data.size() bytes at `offset`: fill `data`.
  virtual void bus_read(uint64_t offset, std::span<uint8_t> data) = 0;
  // The guest writes `data` at `offset`.
  virtual void bus_write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// BusHit is the device an access landed on and the offset inside its range.
struct BusHit {
  BusDevice* device;
  uint64_t offset;
};

class Bus {
 public:
  // `space` names the address space in errors ("port I/O", "MMIO").
  explicit Bus(std::string space) : space_(std::move(space)) {}

  // Claim [base, base + size) for `device` under `name`; refuse empty, wrapping or
  // overlapping ranges. Not thread-safe: register everything before the vCPUs run.
  Result<void> add(uint64_t base, uint64_t size, std::string name, BusDevice& device);
  // The device whose range holds all of [address, address + size), if any.
  std::optional<BusHit> find(uint64_t address, uint64_t size) const;
  // Dispatch one access; false when no device claims it (nothing was done).
  bool read(uint64_t address, std::span<uint8_t> data) const;
  bool write(uint64_t address, std::span<const uint8_t> data) const;
  size_t size() const { return ranges_.size(); }

 private:
  struct Range {
    uint64_t size;
    std::string name;
    BusDevice* device;
  };
  std::string space_;
  std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace hvmm::vmm
