#include "catch.h"
#include "mpq/report/table.h"

TEST_CASE("markdown tables align numbers right and text left", "[report]") {
  mpq::report::Table t({"model", "top-1"});
  t.add_row({"resnet20", "91.93"});
  t.add_row({"mnv2", "9.5"});
  std::string md = t.markdown();
  CHECK(md ==
        "| model    | top-1 |\n| :------- | ----: |\n| resnet20 | 91.93 |\n| mnv2     |   9.5 |\n");
}

TEST_CASE("csv quotes commas, quotes and newlines", "[report]") {
  mpq::report::Table t({"a", "b"});
  t.add_row({"x,y", "say \"hi\""});
  CHECK(t.csv() == "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
}

TEST_CASE("latex tables escape text, typeset mean ± std and bold the best per column", "[report]") {
  mpq::report::Table t({"label", "top1 %", "kl"});
  t.add_row({"MP 10% per_layer", "91.25 ± 0.10", "0.0100"});
  t.add_row({"RTN & co", "85.00 ± 1.50", "0.0020"});
  t.add_row({"none", "-", "-"});
  std::string tex = t.latex("top1_by bits", {0, +1, -1});
  CHECK(tex.find("\\caption{top1\\_by bits}") != std::string::npos);
  CHECK(tex.find("\\begin{tabular}{lrr}") != std::string::npos);
  CHECK(tex.find("top1 \\% & kl \\\\") != std::string::npos);
  CHECK(tex.find("MP 10\\% per\\_layer & $\\mathbf{91.25 \\pm 0.10}$ & $0.0100$ \\\\") !=
        std::string::npos);
  CHECK(tex.find("RTN \\& co & $85.00 \\pm 1.50$ & $\\mathbf{0.0020}$ \\\\") != std::string::npos);
  CHECK(tex.find("none & -- & -- \\\\") != std::string::npos);
  CHECK(tex.find("\\toprule") < tex.find("\\midrule"));
  CHECK(tex.find("\\midrule") < tex.find("\\bottomrule"));
  // Without directions nothing is bold.
  CHECK(t.latex("x").find("mathbf") == std::string::npos);
  CHECK(mpq::report::latex_escape("a_b#c$d{e}~^\\") ==
        "a\\_b\\#c\\$d\\{e\\}\\textasciitilde{}\\textasciicircum{}\\textbackslash{}");
  CHECK(mpq::report::latex_escape("± 1") == "$\\pm$ 1");
}
