#include "mpq/report/figures.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mpq/report/table.h"
#include "mpq/store/sweep_dir.h"
#include "mpq/util/error.h"
#include "mpq/util/process.h"

namespace mpq::report {

std::string gp_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string csv_number(double v) {
  return std::isnan(v) ? "nan" : format("%.9g", v);
}

void render_figure(const std::string& dir, const Figure& f) {
  if (find_in_path("gnuplot").empty())
    throw InputError("figure " + f.name +
                     ": gnuplot not found in PATH (install gnuplot-nox: scripts/install-deps.sh)");
  store::write_file_atomic(dir + "/" + f.name + ".csv", f.csv);
  const std::string font = "DejaVu Sans";
  std::string gp = "# Draws " + f.name + ".png and " + f.name + ".svg from " + f.name +
                   ".csv (written by mpq report).\n"
                   "# Re-plot: cd to this directory, then: gnuplot " +
                   f.name +
                   ".gp\n"
                   "DATA = " +
                   gp_string(f.name + ".csv") +
                   "\n"
                   "set datafile separator \",\"\nset encoding utf8\n"
                   "set terminal pngcairo size " +
                   std::to_string(f.width) + "," + std::to_string(f.height) + " font " +
                   gp_string(font + ",15") +
                   " noenhanced linewidth 1.5\n"
                   "set output " +
                   gp_string(f.name + ".png") + "\n" + f.body +
                   "\nunset output\nreset\nset datafile separator \",\"\n"
                   "set terminal svg size " +
                   std::to_string(f.width * 3 / 4) + "," + std::to_string(f.height * 3 / 4) +
                   " font " + gp_string(font + ",11") +
                   " noenhanced linewidth 1.2 background \"white\"\n"
                   "set output " +
                   gp_string(f.name + ".svg") + "\n" + f.body + "\nunset output\n";
  store::write_file_atomic(dir + "/" + f.name + ".gp", gp);
  const std::string abs = std::filesystem::absolute(dir).string();
  auto r = run_program({"gnuplot", "-e", "cd " + gp_string(abs), abs + "/" + f.name + ".gp"});
  if (r.exit_code != 0) {
    std::string first = r.err;
    // gnuplot's message is the last non-empty line block; keep one line.
    std::string line;
    for (size_t start = 0; start < first.size();) {
      size_t nl = first.find('\n', start);
      std::string l = first.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if (l.find_first_not_of(" \t^") != std::string::npos) line = l;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
    throw InputError("figure " + f.name + ": gnuplot failed (exit " + std::to_string(r.exit_code) +
                     "): " + line);
  }
}

}  // namespace mpq::report
