"""Protobuf and gRPC C++ code generation with Debian's protoc and grpc_cpp_plugin.

Bazel's native proto_library needs the protobuf source repository, which cannot be
fetched offline. This macro runs the system compilers in a genrule instead.
"""

def cc_grpc_proto_library(name, srcs, proto_root, deps = [], include_dirs = [], grpc = True, **kwargs):
    """Generates C++ (and gRPC service) code for `srcs` and wraps it in a cc_library.

    Args:
      name: name of the resulting cc_library.
      srcs: .proto files, paths relative to this package.
      proto_root: the directory (relative to this package) that import paths start from.
      deps: cc_library targets the generated code depends on.
      include_dirs: extra absolute directories searched for imports (e.g. /usr/share/grpc-proto).
      grpc: whether to run grpc_cpp_plugin as well.
      **kwargs: passed to the cc_library (visibility, testonly, ...).
    """
    pkg = native.package_name()
    root = pkg + "/" + proto_root if proto_root else pkg
    rel = [s[len(proto_root) + 1:] if proto_root else s for s in srcs]
    stems = [r[:-len(".proto")] for r in rel]
    hdrs = [proto_root + "/" + s + ".pb.h" if proto_root else s + ".pb.h" for s in stems]
    cc = [proto_root + "/" + s + ".pb.cc" if proto_root else s + ".pb.cc" for s in stems]
    if grpc:
        hdrs += [proto_root + "/" + s + ".grpc.pb.h" if proto_root else s + ".grpc.pb.h" for s in stems]
        cc += [proto_root + "/" + s + ".grpc.pb.cc" if proto_root else s + ".grpc.pb.cc" for s in stems]
    out_dir = "$(GENDIR)/" + root
    cmd = "protoc -I" + root + " " + " ".join(["-I" + d for d in include_dirs])
    cmd += " --cpp_out=" + out_dir
    if grpc:
        cmd += " --grpc_out=" + out_dir + " --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)"
    cmd += " " + " ".join(["$(location " + s + ")" for s in srcs])
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = hdrs + cc,
        cmd = cmd,
        message = "protoc " + name,
    )
    native.cc_library(
        name = name,
        srcs = cc,
        hdrs = hdrs,
        includes = [proto_root if proto_root else "."],
        deps = deps + ["//third_party:protobuf"] + (["//third_party:grpc++"] if grpc else []),
        **kwargs
    )
