#include "mpq/report/document.h"

#include <cctype>

namespace mpq::report {

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

namespace {
// Markdown table cells: a pipe would end the cell.
std::string md_cell(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '|')
      o += "\\|";
    else if (c == '\n')
      o += ' ';
    else
      o += c;
  }
  return o;
}
}  // namespace

void Document::heading(int level, std::string text) {
  blocks_.emplace_back(Kind::kHeading, level, std::move(text));
}
void Document::paragraph(std::string text) {
  blocks_.emplace_back(Kind::kParagraph, 0, std::move(text));
}
void Document::bullets(std::vector<std::string> items) {
  Block b(Kind::kBullets);
  b.items = std::move(items);
  blocks_.push_back(std::move(b));
}
void Document::table(Table t) {
  Block b(Kind::kTable);
  b.table = std::move(t);
  blocks_.push_back(std::move(b));
}
void Document::code(std::string text) {
  blocks_.emplace_back(Kind::kCode, 0, std::move(text));
}
void Document::figure(std::string image, std::string caption,
                      std::vector<std::pair<std::string, std::string>> links) {
  Block b(Kind::kFigure, 0, std::move(caption));
  b.items = {std::move(image)};
  b.links = std::move(links);
  blocks_.push_back(std::move(b));
}

std::string Document::markdown() const {
  std::string o;
  for (const auto& b : blocks_) {
    switch (b.kind) {
      case Kind::kHeading:
        o += std::string(static_cast<size_t>(b.level), '#') + " " + b.text + "\n\n";
        break;
      case Kind::kParagraph:
        o += b.text + "\n\n";
        break;
      case Kind::kBullets:
        for (const auto& i : b.items) o += "- " + i + "\n";
        o += "\n";
        break;
      case Kind::kTable: {
        Table t(b.table.header());
        for (const auto& r : b.table.data()) {
          std::vector<std::string> row;
          for (const auto& c : r) row.push_back(md_cell(c));
          t.add_row(row);
        }
        o += t.markdown() + "\n";
        break;
      }
      case Kind::kCode:
        o += "```\n" + b.text + (b.text.empty() || b.text.back() == '\n' ? "" : "\n") + "```\n\n";
        break;
      case Kind::kFigure: {
        o += "![" + b.text + "](" + b.items[0] + ")\n\n*" + b.text + "*";
        for (const auto& [name, file] : b.links) o += " [" + name + "](" + file + ")";
        o += "\n\n";
        break;
      }
    }
  }
  return o;
}

std::string Document::html(const std::string& title) const {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
      html_escape(title) +
      "</title>\n<style>\n"
      "body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; "
      "line-height: 1.45; color: #222; }\n"
      "table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }\n"
      "th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }\n"
      "td.num { text-align: right; font-variant-numeric: tabular-nums; }\n"
      "th { background: #f3f3f3; }\n"
      "figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }\n"
      "figcaption { font-size: 0.9em; color: #444; }\n"
      "pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }\n"
      "</style>\n</head>\n<body>\n";
  for (const auto& b : blocks_) {
    switch (b.kind) {
      case Kind::kHeading: {
        std::string h = "h" + std::to_string(b.level);
        o += "<" + h + ">" + html_escape(b.text) + "</" + h + ">\n";
        break;
      }
      case Kind::kParagraph:
        o += "<p>" + html_escape(b.text) + "</p>\n";
        break;
      case Kind::kBullets:
        o += "<ul>\n";
        for (const auto& i : b.items) o += "<li>" + html_escape(i) + "</li>\n";
        o += "</ul>\n";
        break;
      case Kind::kTable: {
        o += "<table>\n<thead><tr>";
        for (const auto& h : b.table.header()) o += "<th>" + html_escape(h) + "</th>";
        o += "</tr></thead>\n<tbody>\n";
        for (const auto& r : b.table.data()) {
          o += "<tr>";
          for (const auto& c : r) {
            bool num =
                !c.empty() && (std::isdigit(static_cast<unsigned char>(c[0])) || c[0] == '-');
            o += std::string(num ? "<td class=\"num\">" : "<td>") + html_escape(c) + "</td>";
          }
          o += "</tr>\n";
        }
        o += "</tbody>\n</table>\n";
        break;
      }
      case Kind::kCode:
        o += "<pre>" + html_escape(b.text) + "</pre>\n";
        break;
      case Kind::kFigure: {
        o += "<figure>\n<img src=\"" + html_escape(b.items[0]) + "\" alt=\"" + html_escape(b.text) +
             "\">\n<figcaption>" + html_escape(b.text);
        for (const auto& [name, file] : b.links)
          o += " <a href=\"" + html_escape(file) + "\">" + html_escape(name) + "</a>";
        o += "</figcaption>\n</figure>\n";
        break;
      }
    }
  }
  return o + "</body>\n</html>\n";
}

std::vector<std::string> Document::referenced_files() const {
  std::vector<std::string> out;
  for (const auto& b : blocks_)
    if (b.kind == Kind::kFigure) {
      out.push_back(b.items[0]);
      for (const auto& l : b.links) out.push_back(l.second);
    }
  return out;
}

}  // namespace mpq::report
