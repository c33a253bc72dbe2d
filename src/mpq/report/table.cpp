#include "mpq/report/table.h"

#include <cmath>
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

std::string latex_escape(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (s.compare(i, 2, "\xc2\xb1") == 0) {  // ±
      o += "$\\pm$";
      ++i;
      continue;
    }
    switch (c) {
      case '\\':
        o += "\\textbackslash{}";
        break;
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        o += '\\';
        o += c;
        break;
      case '~':
        o += "\\textasciitilde{}";
        break;
      case '^':
        o += "\\textasciicircum{}";
        break;
      default:
        o += c;
    }
  }
  return o;
}

namespace {
// "12.34 ± 0.56" -> {12.34, "12.34", "0.56"}; "12.34" -> {12.34, "12.34", ""}; else false.
bool parse_value_cell(const std::string& cell, double* mean, std::string* m, std::string* sd) {
  const std::string pm = " \xc2\xb1 ";
  auto at = cell.find(pm);
  *m = at == std::string::npos ? cell : cell.substr(0, at);
  *sd = at == std::string::npos ? "" : cell.substr(at + pm.size());
  if (!numeric(*m) || (!sd->empty() && !numeric(*sd))) return false;
  *mean = std::strtod(m->c_str(), nullptr);
  return true;
}
}  // namespace

std::string Table::latex(const std::string& caption, const std::vector<int>& best) const {
  const size_t n = header_.size();
  std::vector<bool> num(n, true);
  for (const auto& r : rows_)
    for (size_t c = 0; c < n && c < r.size(); ++c) {
      double v;
      std::string m, sd;
      if (!r[c].empty() && r[c] != "-" && !parse_value_cell(r[c], &v, &m, &sd)) num[c] = false;
    }
  // The best mean per column.
  std::vector<double> target(n, NAN);
  for (size_t c = 0; c < n && c < best.size(); ++c) {
    if (best[c] == 0 || !num[c]) continue;
    for (const auto& r : rows_) {
      double v;
      std::string m, sd;
      if (c < r.size() && parse_value_cell(r[c], &v, &m, &sd) &&
          (std::isnan(target[c]) || (best[c] > 0 ? v > target[c] : v < target[c])))
        target[c] = v;
    }
  }
  std::string o = "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\caption{" +
                  latex_escape(caption) + "}\n\\begin{tabular}{";
  for (size_t c = 0; c < n; ++c) o += num[c] ? 'r' : 'l';
  o += "}\n\\toprule\n";
  for (size_t c = 0; c < n; ++c) o += (c ? " & " : "") + latex_escape(header_[c]);
  o += " \\\\\n\\midrule\n";
  for (const auto& r : rows_) {
    for (size_t c = 0; c < n; ++c) {
      const std::string cell = c < r.size() ? r[c] : "";
      double v;
      std::string m, sd, out;
      if (parse_value_cell(cell, &v, &m, &sd)) {
        std::string body = sd.empty() ? m : m + " \\pm " + sd;
        out = (!std::isnan(target[c]) && v == target[c]) ? "$\\mathbf{" + body + "}$"
                                                         : "$" + body + "$";
      } else {
        out = cell == "-" ? "--" : latex_escape(cell);
      }
      o += (c ? " & " : "") + out;
    }
    o += " \\\\\n";
  }
  o += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
  return o;
}

}  // namespace mpq::report
