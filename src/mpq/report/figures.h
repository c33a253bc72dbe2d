// Figures drawn with gnuplot (Debian gnuplot-nox, cairo terminals): every figure is three files
// beside the report — NAME.csv (the data, with a header row: what users re-plot), NAME.gp (the
// gnuplot script, which reads NAME.csv) and the drawings NAME.png (pngcairo) and NAME.svg. Output
// is deterministic for the same data (no timestamps; fixed fonts and sizes).
#pragma once

#include <string>
#include <vector>

namespace mpq::report {

struct Figure {
  std::string name;  ///< file stem, e.g. "tradeoff-01"
  std::string csv;   ///< the data file's content
  /// gnuplot commands that draw the figure, reading the data from the file named by the gnuplot
  /// variable DATA; run once per terminal, so they must not depend on earlier runs.
  std::string body;
  int width = 960, height = 640;  ///< PNG pixels (SVG: the same in points x 0.75)
};

/// Writes NAME.csv and NAME.gp into `dir` and runs gnuplot there to draw NAME.png and NAME.svg.
/// Throws InputError naming the figure if gnuplot is missing or fails (its first error line).
void render_figure(const std::string& dir, const Figure& figure);

/// A string as a gnuplot double-quoted string literal.
std::string gp_string(const std::string& s);

/// A CSV cell for a number: "%.9g", and "nan" for NaN (gnuplot and pandas read both).
std::string csv_number(double v);

}  // namespace mpq::report
