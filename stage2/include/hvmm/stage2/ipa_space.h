// IpaSpace: the size of a VM's guest-physical space and the table geometry it implies.
//
// With a 4 KiB granule, VTCR_EL2.T0SZ = 64 - ipa_bits, and stage 2 may start one level lower
// than stage 1 would by concatenating up to 16 root tables (ARM ARM D8.2.7, "Concatenating
// translation tables at the initial level of stage 2 lookup"). Like Linux KVM, hvmm picks
// the fewest levels: the root covers ipa_bits - 4 bits with ordinary levels, and the
// remaining high bits select one of up to 16 concatenated root tables.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::stage2 {

class IpaSpace {
 public:
  static constexpr unsigned kMinBits = 32;
  static constexpr unsigned kMaxBits = 48;

  // Make the geometry for an IPA size in bits, or fail naming the bad size.
  static Result<IpaSpace> create(unsigned ipa_bits);

  unsigned ipa_bits() const { return ipa_bits_; }
  uint64_t size() const { return uint64_t{1} << ipa_bits_; }
  // Root level in hvmm numbering (0 = page level).
  unsigned root_level() const { return root_level_; }
  // Root level in ARM numbering (3 = page level): the "start level" of the ARM ARM.
  unsigned arm_start_level() const { return 3 - root_level_; }
  // Number of concatenated root tables (1, 2, 4, 8 or 16).
  unsigned root_tables() const { return root_tables_; }
  // Entries in the (concatenated) root.
  unsigned root_entries() const { return root_entries_; }
  // VTCR_EL2.T0SZ for this size.
  unsigned vtcr_t0sz() const { return 64 - ipa_bits_; }
  // VTCR_EL2.SL0 for a 4 KiB granule: 0 → start level 2, 1 → level 1, 2 → level 0.
  unsigned vtcr_sl0() const { return 2 - arm_start_level(); }
  bool contains(IpaRange range) const {
    return !range.overflows() && range.end().value() <= size();
  }

 private:
  IpaSpace(unsigned ipa_bits, unsigned root_level, unsigned root_tables, unsigned root_entries)
      : ipa_bits_(ipa_bits),
        root_level_(root_level),
        root_tables_(root_tables),
        root_entries_(root_entries) {}

  unsigned ipa_bits_;
  unsigned root_level_;
  unsigned root_tables_;
  unsigned root_entries_;
};

}  // namespace hvmm::stage2
