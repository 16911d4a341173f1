# Thin wrapper around CMake. The two commands a new user needs:
#   make demo   installs what is missing (apt), builds, trains on real data
#   make test   installs what is missing, builds, runs every test (also under
#               AddressSanitizer + UndefinedBehaviorSanitizer, and under
#               ThreadSanitizer), the Python package's tests (installed into a
#               throw-away venv), then fuzzes each libFuzzer target for
#               FUZZ_SECONDS (built with clang)
# Others: make build, make install [PREFIX=...], make bench, make bench-large,
# make fuzz, make clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# How long `make test` runs each fuzz target (from a copy of its corpus).
FUZZ_SECONDS ?= 10
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

# Debian packages the build, the tests, the demo and the benchmarks use;
# the fuzz targets need clang and its runtimes (libFuzzer, the sanitizers).
# The Python package (python/) builds with python3-dev, setuptools and wheel
# into a venv (python3-venv, pip); its tests use pytest, hypothesis, tqdm,
# scikit-learn (check_estimator) and FAISS (examples/ivf_faiss.py).
DEPS = build-essential cmake pkg-config libopenblas-serial-dev libcmocka-dev \
       libjansson-dev zlib1g-dev libhdf5-dev dataset-fashion-mnist python3-numpy python3-h5py \
       python3-dev python3-setuptools python3-wheel python3-venv python3-pip \
       python3-pytest python3-hypothesis python3-tqdm python3-sklearn python3-faiss
BENCH_DEPS = python3-faiss python3-sklearn python3-numpy
# make bench: alternating repeats of each method in the large-k table.
LARGE_K_REPEATS ?= 3
# make bench-large: the data set, k, where the data and the spill file go.
ROWS      ?= 16777216
DIM       ?= 256
K         ?= 65536
LARGE_DIR ?= $(BUILD)/bench-large
LARGE_TMP ?= $(LARGE_DIR)/tmp
HIER_ARGS ?=
FUZZ_DEPS = clang libclang-rt-14-dev

.PHONY: all deps bench-deps fuzz-deps build build-asan build-tsan test test-release test-asan \
        test-tsan test-fuzz test-python demo install bench bench-large fuzz clean

all: build

# Installs only what is missing, so a machine that has everything needs no
# root and no network.
deps:
	@bash scripts/install-deps.sh $(DEPS)

bench-deps:
	@bash scripts/install-deps.sh $(BENCH_DEPS)

fuzz-deps:
	@bash scripts/install-deps.sh $(FUZZ_DEPS)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDKM_SANITIZE=ON -DDKM_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# Data races in the workers' hand-offs (tiles, blocks, the reader thread).
build-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDKM_TSAN=ON -DDKM_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)

test-tsan: build-tsan
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  ctest --output-on-failure -j $(JOBS)

# The Python package, linked with this build's static library, installed
# with pip into a throw-away venv; pytest runs from outside the tree.
test-python: build
	bash python/run-tests.sh $(BUILD)

test: test-release test-python test-asan test-tsan test-fuzz

demo: build
	@bash scripts/demo.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# After the side-by-side table, the large-k table (bench/large_k.py: flat and
# hierarchical diskmeans against FAISS's two-level clustering, k = 4096 and
# 1024), with LARGE_K_REPEATS alternating repeats of each method; HIER_ARGS go
# to the hierarchical rows only (e.g. HIER_ARGS="--refine 2"). Both run even
# if the other fails; the status is the first failure's. Then the read speed
# of the input formats (bench/read_formats.sh: .npy, HDF5, .fvecs.gz, zcat).
bench: build bench-deps
	@status=0; mkdir -p bench/results; \
	for t in f32 f16; do $(BUILD)/bench/bench_shards --dir $(BUILD)/bench-shards --dtype $$t \
	  >bench/results/shards-$$t.json || status=$$?; done; \
	bash bench/compare.sh $(BUILD) || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	bash bench/read_formats.sh $(BUILD) || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	mkdir -p bench/results; \
	/usr/bin/python3 bench/large_k.py --build-dir $(BUILD) --repeats $(LARGE_K_REPEATS) \
	  --hier-args "$(HIER_ARGS)" --markdown bench/results/large-k.md \
	  --json-out bench/results/large-k.json || { s=$$?; [ $$status -ne 0 ] || status=$$s; }; \
	exit $$status

# The moonshot (bench/bench_large.py): ROWS x DIM float32 rows (16 GiB by
# default, generated once into LARGE_DIR after a free-space check), trained
# hierarchically at k = K under /usr/bin/time -v with its temporary files in
# LARGE_TMP; prints wall time, peak RSS and temporary disk against the goals.
# A small run: make bench-large ROWS=1048576 K=4096
bench-large: build
	@/usr/bin/python3 bench/bench_large.py --build-dir $(BUILD) --dir $(LARGE_DIR) \
	  --tmp-dir $(LARGE_TMP) --rows $(ROWS) --dim $(DIM) --k $(K) --hier-args "$(HIER_ARGS)"

# The libFuzzer targets (and, with them, the rest of the tree built by clang)
# under ASan+UBSan. Run one longer with, e.g.,
#   build-fuzz/test/fuzz_npy -max_total_time=600 CORPUS_COPY_DIR
fuzz: deps fuzz-deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DDKM_FUZZ=ON -DDKM_SANITIZE=ON \
	  -DDKM_BUILD_BENCH=OFF -DDKM_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Every fuzz target CMake defines (one per test/fuzz/fuzz_*.c) runs for
# FUZZ_SECONDS from a copy of its corpus in $(FUZZ_BUILD)/fuzz-runs/; a crash,
# a sanitizer report or a leak fails the run (the input is kept there).
test-fuzz: fuzz
	cd $(FUZZ_BUILD) && ctest -L fuzz --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) python/build python/src/diskmeans.egg-info
