#include "models/torch/output_text.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

// Feed: appends `text` one byte at a time (as a byte-level model makes it)
// and returns what was sent after each byte.
std::vector<std::string> Feed(OutputText& out, const std::string& text) {
  std::vector<std::string> sent;
  for (char c : text) sent.push_back(out.Append(std::string(1, c)));
  return sent;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string all;
  for (const std::string& p : parts) all += p;
  return all;
}

TEST(OutputTextTest, WithoutStopStringsAsciiGoesOutAtOnce) {
  OutputText out({});
  EXPECT_EQ(Feed(out, "abc"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(out.Flush(), "");
  EXPECT_FALSE(out.stopped());
}

TEST(OutputTextTest, AUtf8CharacterIsSentWhole) {
  OutputText out({});
  // "é" is C3 A9; "→" is E2 86 92; "😀" is F0 9F 98 80.
  EXPECT_EQ(Feed(out, "\xC3\xA9"), (std::vector<std::string>{"", "\xC3\xA9"}));
  EXPECT_EQ(Feed(out, "\xE2\x86\x92"), (std::vector<std::string>{"", "", "\xE2\x86\x92"}));
  EXPECT_EQ(Feed(out, "\xF0\x9F\x98\x80"),
            (std::vector<std::string>{"", "", "", "\xF0\x9F\x98\x80"}));
}

TEST(OutputTextTest, BytesThatAreNotUtf8AreNotHeld) {
  OutputText out({});
  // A lone continuation byte, and a lead byte followed by ASCII.
  EXPECT_EQ(Feed(out,
                 "\x80"
                 "a"),
            (std::vector<std::string>{"\x80", "a"}));
  EXPECT_EQ(Feed(out,
                 "\xC3"
                 "b"),
            (std::vector<std::string>{"",
                                      "\xC3"
                                      "b"}));
}

TEST(OutputTextTest, FlushSendsAnIncompleteCharacterAtTheEnd) {
  OutputText out({});
  EXPECT_EQ(Join(Feed(out, "x\xE2\x86")), "x");
  EXPECT_EQ(out.Flush(), "\xE2\x86");
}

TEST(OutputTextTest, OutputEndsBeforeTheStopString) {
  OutputText out({"END"});
  const std::vector<std::string> sent = Feed(out, "the ENd of the END and more");
  EXPECT_TRUE(out.stopped());
  EXPECT_EQ(Join(sent), "the ENd of the ");
  EXPECT_EQ(out.Append("x"), "");  // nothing after a stop
  EXPECT_EQ(out.Flush(), "");
}

TEST(OutputTextTest, APossibleStartOfAStopStringWaitsThenGoesOut) {
  OutputText out({"\n\n"});
  EXPECT_EQ(Feed(out, "a\nb"), (std::vector<std::string>{"a", "", "\nb"}));
  EXPECT_FALSE(out.stopped());
  EXPECT_EQ(out.Append("\n"), "");
  EXPECT_EQ(out.Flush(), "\n");  // ended for another reason: what was held goes out
}

TEST(OutputTextTest, TheFirstOfSeveralStopStringsWins) {
  OutputText out({"lazy dog", "fox", ""});
  EXPECT_EQ(Join(Feed(out, "the quick brown fox jumps over the lazy dog")), "the quick brown ");
  EXPECT_TRUE(out.stopped());
}

TEST(OutputTextTest, StopStringMayEndInsideTheHeldBytes) {
  // "ab" waits as a possible start of "abc"; then "d" completes "bd" inside
  // it: the output ends before "bd".
  OutputText out({"abc", "bd"});
  EXPECT_EQ(Join(Feed(out, "xabd")), "xa");
  EXPECT_TRUE(out.stopped());
}

TEST(OutputTextTest, HeldStartOfAStopStringDoesNotSplitACharacter) {
  // "\xA9" (the end of "é") may begin the stop string "\xA9!": it is held,
  // and so is the "\xC3" before it, so that "é" is not cut in two.
  OutputText out({"\xA9!"});
  EXPECT_EQ(Feed(out, "a\xC3\xA9"), (std::vector<std::string>{"a", "", ""}));
  EXPECT_EQ(out.Append("b"),
            "\xC3\xA9"
            "b");
}

TEST(OutputTextTest, IncompleteTail) {
  EXPECT_EQ(Utf8IncompleteTail(""), 0u);
  EXPECT_EQ(Utf8IncompleteTail("abc"), 0u);
  EXPECT_EQ(Utf8IncompleteTail("a\xC3"), 1u);
  EXPECT_EQ(Utf8IncompleteTail("a\xC3\xA9"), 0u);
  EXPECT_EQ(Utf8IncompleteTail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(Utf8IncompleteTail("\x80\x80\x80\x80"), 0u);
}

}  // namespace
}  // namespace sluice
