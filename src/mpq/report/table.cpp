#include "mpq/report/table.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace mpq::report {

std::string format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < static_cast<int>(sizeof buf)) return buf;
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(big.data(), big.size(), fmt, ap);
  va_end(ap);
  big.resize(static_cast<size_t>(n));
  return big;
}

std::string pct(double fraction, int digits) {
  return format("%.*f", digits, 100.0 * fraction);
}

namespace {
bool numeric(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end && (*end == '\0' || (end[0] == '%' && end[1] == '\0'));
}
}  // namespace

std::string Table::markdown() const {
  size_t n = header_.size();
  std::vector<size_t> width(n, 3);
  std::vector<bool> right(n, true);
  for (size_t c = 0; c < n; ++c) width[c] = std::max(width[c], header_[c].size());
  for (const auto& r : rows_)
    for (size_t c = 0; c < n && c < r.size(); ++c) {
      width[c] = std::max(width[c], r[c].size());
      if (!r[c].empty() && r[c] != "-" && !numeric(r[c])) right[c] = false;
    }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t c = 0; c < n; ++c) {
      std::string v = c < cells.size() ? cells[c] : "";
      std::string pad(width[c] - v.size(), ' ');
      s += " " + (right[c] ? pad + v : v + pad) + " |";
    }
    return s + "\n";
  };
  std::string out = line(header_);
  out += "|";
  for (size_t c = 0; c < n; ++c)
    out += (right[c] ? " " + std::string(width[c] - 1, '-') + ":"
                     : " :" + std::string(width[c] - 1, '-')) +
           " |";
  out += "\n";
  for (const auto& r : rows_) out += line(r);
  return out;
}

std::string Table::csv() const {
  auto cell = [](const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) out += (c ? "," : "") + cell(cells[c]);
    out += "\n";
  };
  line(header_);
  for (const auto& r : rows_) line(r);
  return out;
}

}  // namespace mpq::report
