"""sluice_fuzz_target: one libFuzzer target, also kept as a regression test.

For a target NAME whose LLVMFuzzerTestOneInput is in NAME_fuzzer.cc:
  :NAME_fuzz_test  a cc_test (normal suite, any compiler) that replays every
                   file in corpus/NAME/ and regressions/NAME/ through the target.
  :NAME_fuzzer     the fuzzer binary (tagged manual). Built with --config=fuzz
                   (clang, see tools/fuzz) it is a libFuzzer binary; otherwise
                   it is the same replay runner as the test.
"""

def sluice_fuzz_target(name, deps, size = "small"):
    lib = name + "_fuzz_lib"
    inputs = name + "_inputs"
    native.cc_library(
        name = lib,
        testonly = True,
        srcs = [name + "_fuzzer.cc"],
        deps = deps + [":fuzz_util"],
        alwayslink = True,
    )
    native.filegroup(
        name = inputs,
        testonly = True,
        srcs = native.glob(["corpus/%s/*" % name, "regressions/%s/*" % name]),
    )
    native.cc_test(
        name = name + "_fuzz_test",
        size = size,
        data = [":" + inputs],
        args = ["$(locations :%s)" % inputs],
        deps = [
            ":" + lib,
            ":replay_main",
        ],
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        tags = ["manual"],
        linkopts = select({
            ":libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = [":" + lib] + select({
            ":libfuzzer": [],
            "//conditions:default": [":replay_main"],
        }),
    )
