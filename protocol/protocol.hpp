#pragma once
// Everything of the v1 wire contract in one include (openapi.yaml is the source of truth).

#include "protocol/admin.hpp"
#include "protocol/engines.hpp"
#include "protocol/job_state.hpp"
#include "protocol/jobs.hpp"
#include "protocol/json_fields.hpp"
#include "protocol/types.hpp"
