#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*, and the
hand-made hostile inputs into fuzz/corpus/<target>/hostile-* (or fuzz/hostile-pending/<target>/
while the parser they attack is not bounded yet).

Run from the repository root: `python3 fuzz/seeds/make-seeds.py`. Needs gcc, strip, zstd, xz
and openssl.
The files are small (a few KB per target) and committed; this script says how they were made.
"""
import gzip, io, json, os, subprocess, tarfile, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
DIGEST = "sha256:" + "ab" * 32


def put(target, name, data, prefix="seed-", corpus=CORPUS):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, prefix + name), "wb") as f:
        f.write(data)


def copy(target, src):
    with open(os.path.join(ROOT, src), "rb") as f:
        name = os.path.basename(os.path.dirname(src)) + "-" + os.path.basename(src)
        put(target, name, f.read())


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, bytes) for files, (name, None) for directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def xz(data):
    return subprocess.run(["xz", "-q", "-c", "--check=crc32", "--lzma2=dict=1MiB"], input=data,
                          check=True, stdout=subprocess.PIPE).stdout


def signed(ko):
    """ko signed as `sign-file sha256 KEY CERT` signs it, with a throwaway key."""
    with tempfile.TemporaryDirectory() as d:
        key, cert, mod, sig = (os.path.join(d, n) for n in ("k.pem", "c.pem", "m.ko", "m.p7s"))
        subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "36500", "-subj", "/CN=fuzz seed signing", "-keyout", key,
                        "-out", cert], check=True, capture_output=True)
        with open(mod, "wb") as f:
            f.write(ko)
        subprocess.run(["openssl", "cms", "-sign", "-binary", "-noattr", "-nocerts",
                        "-nosmimecap", "-outform", "DER", "-md", "sha256", "-signer", cert,
                        "-inkey", key, "-in", mod, "-out", sig], check=True)
        with open(sig, "rb") as f:
            p7 = f.read()
    info = bytes([0, 0, 2, 0, 0, 0, 0, 0]) + len(p7).to_bytes(4, "big")
    return ko + p7 + info + b"~Module signature appended~\n"


def module():
    with tempfile.TemporaryDirectory() as d:
        obj = os.path.join(d, "hello.ko")
        subprocess.run(["gcc", "-c", "-O2", "-o", obj,
                        os.path.join(ROOT, "fuzz", "seeds", "hello.c")], check=True)
        subprocess.run(["strip", "--strip-debug", "-R", ".comment",
                        "-R", ".note.GNU-stack", obj], check=True)
        with open(obj, "rb") as f:
            return f.read()


def refs(dtk_kind="DockerImage", os_tag="rhel-coreos"):
    return json.dumps({
        "kind": "ImageStream", "apiVersion": "image.openshift.io/v1",
        "metadata": {"name": "4.16.3"},
        "spec": {"tags": [
            {"name": "cli", "from": {"kind": "DockerImage",
                                     "name": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@" + DIGEST}},
            {"name": "driver-toolkit", "annotations": {"io.openshift.build.commit.id": "abc"},
             "from": {"kind": dtk_kind,
                      "name": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@" + DIGEST}},
            {"name": os_tag, "annotations": {
                "io.openshift.build.versions": "machine-os=416.94.202407081958-0"},
             "from": {"kind": "DockerImage",
                      "name": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@" + DIGEST}},
        ]},
    }, indent=2)


def meta(version="4.16.3", kind="cincinnati-metadata-v0"):
    return json.dumps({"kind": kind, "version": version, "previous": ["4.16.2"],
                       "metadata": {"url": "https://access.redhat.com/errata/RHSA-2024:4316"}})


def stream_zst(chunks):
    """zstd of the concatenated chunks; a chunk is bytes or a count of zero bytes."""
    p = subprocess.Popen(["zstd", "-q", "-c", "-3"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)

    def feed():
        for c in chunks:
            if isinstance(c, int):
                block = bytes(1 << 20)
                while c > 0:
                    p.stdin.write(block[:min(c, len(block))])
                    c -= len(block)
            else:
                p.stdin.write(c)
        p.stdin.close()

    import threading
    t = threading.Thread(target=feed)
    t.start()
    out = p.stdout.read()
    t.join()
    p.wait()
    return out


def gnu_header(name, size, typ=b"0"):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = typ
    return info.tobuf(format=tarfile.GNU_FORMAT)


def long_name_bomb(size):
    """A GNU long-name header that claims `size` bytes of name, then the zeros."""
    h = bytearray(gnu_header("././@LongLink", 0, b"L"))
    h[124:136] = ("%011o" % size).encode() + b"\0"
    h[148:156] = b" " * 8
    h[148:156] = ("%06o\0 " % sum(h)).encode()
    return stream_zst([bytes(h), size])


def hostile():
    pending = os.path.join(ROOT, "fuzz", "hostile-pending")
    bomb = long_name_bomb(300 << 20)
    put("layer", "gnu-long-name-300mib.tar.zst", bomb, prefix="hostile-")
    put("verify_scan", "gnu-long-name-300mib.tar.zst", bomb, prefix="hostile-", corpus=pending)
    k = "5.14.0-1.el9.x86_64"
    chunks = []
    for i in range(3):
        chunks += [gnu_header(f"opt/lib/modules/{k}/bomb{i}.ko", 200 << 20), 200 << 20]
    put("verify_scan", "three-200mib-modules.tar.zst", stream_zst(chunks + [1024]),
        prefix="hostile-", corpus=pending)


def main():
    for d, _, files in os.walk(CORPUS):
        for f in files:
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))
    # The matrix loader and the lock reader: the repository's own example files.
    for src in ["tests/matrices/good/matrix.toml", "tests/matrices/kmm/matrix.toml",
                "tests/matrices/bad/35-several-problems.toml",
                "tests/matrices/bad/36-unknown-keys-everywhere.toml",
                "tests/matrices/bad/01-toml-syntax.toml",
                "tests/matrices/bad/28-wrong-value-types.toml"]:
        copy("matrix", src)
    for src in ["tests/locks/new.lock", "tests/matrices/kmm/matrix.lock"]:
        copy("lock", src)
    put("lock", "future-version.lock", "version = 99\n")

    put("image_references", "ok.json", refs())
    put("image_references", "machine-os-content.json", refs(os_tag="machine-os-content"))
    put("image_references", "wrong-kind.json", refs(dtk_kind="ImageStreamTag"))
    put("image_references", "not-imagestream.json", '{"kind":"List","apiVersion":"v1"}')

    put("release_metadata", "ok.json", meta())
    put("release_metadata", "other-version.json", meta(version="4.16.2"))
    put("release_metadata", "wrong-kind.json", meta(kind="something-else"))

    put("dtk", "ok.json", json.dumps({"KERNEL_VERSION": "5.14.0-427.18.1.el9_4.x86_64",
                                      "RT_KERNEL_VERSION": "5.14.0-427.18.1.el9_4.x86_64+rt",
                                      "RHEL_VERSION": "9.4"}))
    put("dtk", "no-rt.json", json.dumps({"KERNEL_VERSION": "4.18.0-305.17.1.el8_4.x86_64",
                                         "RHEL_VERSION": "8.4"}))
    put("dtk", "rt-not-installed.json", json.dumps({
        "KERNEL_VERSION": "5.14.0-284.52.1.el9_2.aarch64",
        "RT_KERNEL_VERSION": "package kernel-rt-core is not installed", "RHEL_VERSION": "9.2"}))

    nodes = [{"version": v, "payload": "quay.io/openshift-release-dev/ocp-release@" + DIGEST,
              "metadata": {"io.openshift.upgrades.graph.release.channels": "stable-4.16"}}
             for v in ["4.16.3", "4.15.20", "4.16.0", "4.16.3", "4.16.1"]]
    nodes.append({"version": "not-a-version", "payload": "quay.io/x/y:tag"})
    put("graph", "ok.json", json.dumps({"nodes": nodes, "edges": [[0, 1]],
                                        "conditionalEdges": []}))
    put("graph", "empty.json", '{"nodes":[]}')

    manifests = [("release-manifests", None),
                 ("release-manifests/image-references", refs().encode()),
                 ("release-manifests/release-metadata", meta().encode()),
                 ("release-manifests/0000_50_cluster.yaml", b"kind: Namespace\n")]
    layer = tar(manifests)
    put("layer", "payload.tar", layer)
    put("layer", "payload.tar.gz", gz(layer))
    put("layer", "payload.tar.zst", zst(layer))
    put("layer", "pax.tar.gz", gz(tar([("./" + n, d) for n, d in manifests], tarfile.PAX_FORMAT)))
    put("layer", "other.tar.gz", gz(tar([("etc/os-release", b"ID=rhel\n")])))
    put("layer", "longname.tar", tar([("release-manifests/" + "x" * 200, b"long"),
                                      ("release-manifests/image-references", b"{}")]))

    ko = module()
    k = "5.14.0-427.18.1.el9_4.x86_64"
    mods = tar([(f"opt/lib/modules/{k}/hello.ko", ko),
                (f"usr/lib/modules/{k}/kernel/drivers/net-foo.ko", ko),
                (f"lib/modules/{k}/extra/.wh.old.ko", b""),
                ("usr/lib/modules/.wh..wh..opq", b""),
                ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")])
    put("verify_scan", "modules.tar", mods)
    put("verify_scan", "modules.tar.gz", gz(mods))
    put("verify_scan", "modules.tar.zst", zst(mods))
    put("modinfo", "hello.ko", ko)
    put("modinfo", "not-elf", b"\x7fELF but not really")
    signed_seeds(ko, k)
    image_fs_seeds(ko, k)
    hostile()


def signed_seeds(ko, k):
    """A signed module, plain and compressed as .ko.xz and .ko.zst."""
    sko = signed(ko)
    put("modinfo", "hello-signed.ko", sko)
    put("verify_scan", "signed-compressed.tar.gz",
        gz(tar([(f"opt/lib/modules/{k}/hello.ko.xz", xz(sko)),
                (f"opt/lib/modules/{k}/other.ko.zst", zst(sko))])))


def links(entries, files=()):
    """A tar of `files` (name, bytes), then (name, kind, target) link entries: kind "sym" or
    "hard"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, kind, target in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
            info.linkname = target
            t.addfile(info)
    return buf.getvalue()


def layers(*blobs):
    """The `image_fs` target's input: each layer after its little-endian u32 length."""
    return b"".join(len(b).to_bytes(4, "little") + b for b in blobs)


def image_fs_seeds(ko, k):
    """Images whose later layers link, hard-link, white out or make opaque a module path."""
    d = f"opt/lib/modules/{k}"
    base = tar([("opt", None), ("opt/lib", None), ("opt/lib/modules", None), (d, None),
                (f"{d}/hello.ko", ko), (f"{d}/evil.ko", ko), ("lib", None)])
    top = links([
        (f"{d}/hello.ko", "sym", "evil.ko"),
        (f"{d}/b.ko", "hard", f"{d}/evil.ko"),
        (f"{d}/up.ko", "sym", "../" * 12 + f"{d}/evil.ko"),
        (f"{d}/out.ko", "sym", "/stage/evil.ko"),
        (f"{d}/host", "sym", f"/lib/modules/{k}"),
        ("usr/lib/modules", "sym", "../../opt/lib/modules")], [("etc/motd", b"hi\n")])
    put("image_fs", "links.bin", layers(gz(base), top))
    put("image_fs", "whiteouts.bin", layers(base, gz(tar([
        (f"{d}/.wh.evil.ko", b""), (f"{d}/extra/.wh..wh..opq", b""),
        (f"{d}/hello.ko", ko)]))))
    tree = tar([(f"usr/lib/modules/{k}/modules.dep",
                 b"kernel/drivers/media/videodev.ko.xz: kernel/drivers/media/mc.ko.xz\n"),
                (f"usr/lib/modules/{k}/modules.builtin", b"kernel/fs/ext4/ext4.ko\n")])
    put("image_fs", "dtk-tree.bin", layers(links([("lib", "sym", "usr/lib")]), zst(tree)))


if __name__ == "__main__":
    main()
