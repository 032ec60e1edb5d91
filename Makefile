# One entry point for what CI runs (`make test`), the demo and the benchmarks.

CARGO ?= cargo
# buildah's storage and isolation come from its own environment; these defaults work as root
# on a plain Debian machine with no container engine.
export STORAGE_DRIVER ?= vfs
export BUILDAH_ISOLATION ?= chroot

.PHONY: all build deps test lint unit bench demo demo-clean schema clean fuzz

all: build

build:
	$(CARGO) build --release

deps:
	@scripts/install-deps.sh

lint:
	scripts/module-cycles.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: the quick path, on any machine with cargo (no root, buildah or registry): every unit
## test, the fuzz corpus replay, the hostile-layer test, and the integration tests that read
## only committed fixtures (UNIT_IT, module filters of tests/it/). UNIT_SKIP: the unit tests
## that start a docker-registry (`make test` runs them).
UNIT_IT := cli:: diff:: export:: harness:: init:: kmm_crds:: kmm_matrix:: plan:: schema::
UNIT_SKIP := registry::blob::tests::a_body_cut_short_resumes_from_the_last_byte_where_ranges_are_honoured
unit:
	$(CARGO) test --workspace --lib --bins -- $(addprefix --skip ,$(UNIT_SKIP))
	$(CARGO) test --test fuzz_corpus --test verify_hostile
	$(CARGO) test --test it -- $(UNIT_IT)

## test: installs what is missing, lints, then runs every test against a real registry.
## Benchmarks are not tests, but each runs once at its smallest size (`DM_BENCH_SMOKE=1`,
## no page written) so that they cannot rot.
test: deps lint
	scripts/with-registry.sh $(CARGO) test --workspace
	DM_BENCH_SMOKE=1 scripts/with-registry.sh $(CARGO) test --benches

## bench: runs every benchmark (about 30 minutes), then writes docs/benchmarks.md and its plots.
bench: deps
	rm -rf target/bench
	scripts/with-registry.sh $(CARGO) bench --bench plan --bench resolve --bench build --bench nightly
	$(CARGO) bench --bench report

## fuzz: runs every cargo-fuzz target in turn, FUZZ_TIME seconds each (default 600); needs the
## nightly toolchain. `make test` replays the committed corpus (tests/fuzz_corpus.rs).
fuzz:
	fuzz/run.sh $(FUZZ_TARGETS)

## schema: regenerates schemas/matrix.schema.json from the Rust types.
schema:
	$(CARGO) run --quiet -- schema > schemas/matrix.schema.json

## demo: a local OpenShift sandbox, real kernel modules built for several kernels, end to end.
demo:
	@scripts/demo.sh

## demo-clean: removes everything the demo made (.sandbox/: Debian roots, registry, images).
demo-clean:
	@scripts/demo-clean.sh

clean:
	$(CARGO) clean
