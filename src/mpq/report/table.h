// Plain-text tables: Markdown (GitHub pipe tables, columns padded for reading in a terminal)
// and CSV (RFC 4180 quoting). Used by inspect, aggregate and the main job's summary.
#pragma once

#include <string>
#include <vector>

namespace mpq::report {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t rows() const { return rows_.size(); }
  const std::vector<std::vector<std::string>>& data() const { return rows_; }
  const std::vector<std::string>& header() const { return header_; }
  /// Columns whose every cell parses as a number are right-aligned.
  std::string markdown() const;
  std::string csv() const;
  /// A booktabs table (\begin{table}..\end{table}) for LaTeX: text escaped, "m ± s" cells as
  /// $m \pm s$, numeric columns right-aligned. `best[c]` = +1 / -1 sets the highest / lowest
  /// value (the mean) of column c in bold; 0 or absent: no bold.
  std::string latex(const std::string& caption, const std::vector<int>& best = {}) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// printf-style formatting into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// LaTeX-escapes text (\ & % $ # _ { } ~ ^, and ± as $\pm$).
std::string latex_escape(const std::string& s);

/// Percent with `digits` decimals ("91.25").
std::string pct(double fraction, int digits = 2);

}  // namespace mpq::report
