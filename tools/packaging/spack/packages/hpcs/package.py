# Spack package for hpcs (Spack >= 1.0 repository layout).
#
# NOT TESTED: no `spack install` of this file has ever run. Spack is
# distributed only from its git repository: it is on none of the package
# registries this project's machines and CI reach (not on PyPI: no project
# named spack there; not in Debian 12), and CI can fetch nothing else, so no
# test can install Spack. Untested too, so: the builtin build_systems import
# (Spack >= 1.0 with the spack-packages repository), the `rust` and `c`
# dependencies resolving to the site's compilers. The EasyBuild easyconfig
# and the Debian package next to it are tested (tools/packaging/test.sh).
#
# Offline build: the crates come from a second tarball made next to the
# source tarball at release time,
#     cargo vendor --locked --versioned-dirs hpcs-crates-VERSION
#     tar -czf hpcs-crates-VERSION.tar.gz hpcs-crates-VERSION
# which `resource` unpacks as vendor/; a .cargo/config.toml in the source
# tree then points cargo at it, and the build runs with --offline. Put both
# tarballs in a Spack mirror (`spack mirror add`), under hpcs/.
#
# Checksums: a file inside the source tarball cannot hold that tarball's
# SHA-256, so the versions below have none; a release adds them (`spack
# checksum hpcs VERSION`), and until then `spack install --no-checksum`.

from spack_repo.builtin.build_systems.generic import Package

from spack.package import *


class Hpcs(Package):
    """Chunked, seekable, authenticated-encryption archives for sensitive data on
    shared HPC systems, mounted read-only with FUSE on compute nodes and decrypted on
    demand into locked memory; keys from age identities or from Vault/OpenBao released
    to SPIFFE identities. hpcs-pack (secure device), hpcs-mount (compute nodes),
    hpcs-job (Slurm batch scripts)."""

    homepage = "https://example.org/hpcs"  # the project has no public URL yet
    url = "https://example.org/hpcs/hpcs-0.1.0.tar.gz"

    license("Apache-2.0")

    version("0.1.0")

    resource(
        name="crates",
        url="https://example.org/hpcs/hpcs-crates-0.1.0.tar.gz",
        destination="",
        placement="vendor",
        when="@0.1.0",
    )

    depends_on("rust@1.88:", type="build")
    depends_on("c", type="build")  # aws-lc-sys compiles AWS-LC with the C compiler
    # hpcs-mount mounts through the system's setuid fusermount3 (package fuse3),
    # which a Spack prefix cannot provide; hpcs-pack and hpcs-job need nothing.

    binaries = ["hpcs-pack", "hpcs-mount", "hpcs-job"]

    def install(self, spec, prefix):
        mkdirp(".cargo")
        with open(join_path(".cargo", "config.toml"), "w") as f:
            f.write(
                '[source.crates-io]\nreplace-with = "vendored"\n'
                f'[source.vendored]\ndirectory = "{join_path(self.stage.source_path, "vendor")}"\n'
            )
        # Default features only: the benchmark ceilings are never built.
        cargo(
            "build", "--release", "--locked", "--offline", "-j", str(make_jobs),
            "-p", "hpcs", "-p", "hpcs-pack", "-p", "hpcs-job", "--bins",
        )
        mkdirp(prefix.bin)
        for b in self.binaries:
            install(join_path("target", "release", b), prefix.bin)
        generated = join_path("tools", "packaging")
        install_tree(join_path(generated, "man"), prefix.share.man.man1)
        install_tree(
            join_path(generated, "completions", "bash"),
            join_path(prefix.share, "bash-completion", "completions"),
        )
        install_tree(
            join_path(generated, "completions", "zsh"), join_path(prefix.share, "zsh", "site-functions")
        )
        install_tree(
            join_path(generated, "completions", "fish"),
            join_path(prefix.share, "fish", "vendor_completions.d"),
        )
        docs = join_path(prefix.share, "doc", "hpcs")
        mkdirp(docs)
        for d in ["README.md", "FORMAT.md", "RESULTS.md", join_path(generated, "config.toml")]:
            install(d, docs)
        install_tree("docs", docs)

    @run_after("install")
    @on_package_attributes(run_tests=True)
    def check_versions(self):
        for b in self.binaries:
            out = Executable(join_path(self.prefix.bin, b))("--version", output=str)
            assert out.strip() == f"{b} {self.version}", out
