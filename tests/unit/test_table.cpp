#include <catch2/catch.hpp>

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
