// Binary serialization of the pieces ranks exchange in layer-parallel trials (LayerTables,
// LayerOutcome). Little-endian host format: the ranks of one job run the same binary.
#pragma once

#include <string>

#include "mpq/ptq/quantize.h"

namespace mpq::sweep {

void write_tables(std::string& out, const quant::LayerTables& t);
quant::LayerTables read_tables(const std::string& in, size_t& pos);

void write_outcome(std::string& out, const ptq::LayerOutcome& o);
ptq::LayerOutcome read_outcome(const std::string& in, size_t& pos);

void write_int(std::string& out, int64_t v);
int64_t read_int(const std::string& in, size_t& pos);

}  // namespace mpq::sweep
