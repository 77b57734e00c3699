// The hvmm.v1.VmSpec of a CreateVm request as VmOptions, with its defaults filled in, and the
// google.rpc.Code an hvmm ErrorCode is reported with (the daemon's gRPC status and the VM
// process's channel responses use the same mapping).
#pragma once

#include <string>

#include "hvmm/base/result.h"
#include "hvmm/daemon/options/vm_options.h"
#include "hvmm/v1/vm.pb.h"

namespace hvmm::daemon {

// Fill VmOptions from `spec` for the VM `name`; unset fields take `hvmm run`'s defaults.
// Only what VmOptions cannot represent is checked here (an unknown dirty_tracking); the rest
// is make_machine_config()'s, which names the field.
Result<VmOptions> options_from_spec(const std::string& name, const hvmm::v1::VmSpec& spec);

// The google.rpc.Code value of `code` (INVALID_ARGUMENT for kInvalidArgument, ...).
int rpc_code(ErrorCode code);

}  // namespace hvmm::daemon
