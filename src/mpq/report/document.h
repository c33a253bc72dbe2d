// A small document model for reports: headings, paragraphs, tables, figures, lists, code, rendered
// as GitHub-flavoured Markdown and as a standalone HTML page with the same content. Text is plain
// (no markup is interpreted): Markdown special characters in cells are escaped, HTML is escaped.
#pragma once

#include <string>
#include <vector>

#include "mpq/report/table.h"

namespace mpq::report {

class Document {
 public:
  void heading(int level, std::string text);
  void paragraph(std::string text);
  void bullets(std::vector<std::string> items);
  void table(Table t);
  void code(std::string text);
  /// A figure: `image` (a file beside the document) with a caption and links to other files
  /// (e.g. {"SVG", "x.svg"}, {"data", "x.csv"}).
  void figure(std::string image, std::string caption,
              std::vector<std::pair<std::string, std::string>> links = {});

  std::string markdown() const;
  std::string html(const std::string& title) const;
  /// Every file the document references (figures and links), relative to it.
  std::vector<std::string> referenced_files() const;

 private:
  enum class Kind { kHeading, kParagraph, kBullets, kTable, kCode, kFigure };
  struct Block {
    explicit Block(Kind k, int l = 0, std::string t = {}) : kind(k), level(l), text(std::move(t)) {}
    Kind kind;
    int level = 0;
    std::string text;
    std::vector<std::string> items;
    Table table{{}};
    std::vector<std::pair<std::string, std::string>> links;
  };
  std::vector<Block> blocks_;
};

/// Escapes &, <, >, " for HTML.
std::string html_escape(const std::string& s);

}  // namespace mpq::report
