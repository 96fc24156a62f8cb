# moeflash — one Makefile.
#
# Sources are found by folder, so adding a file under src/ or tests/ needs no
# edit here. SIMD kernels are named *_avx2.c, *_avx512.c, *_neon.c and get
# their own flags (STYLE.md: chosen once at start-up; the scalar code is the
# specification). The library is built as libmoeflash.a and linked by the
# binary, the test runner and the benchmarks alike.

CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
OPT     ?= -O2 -g
CFLAGS  ?=
CFLAGS  += $(CSTD) $(WARN) $(OPT) -Iinclude -Isrc -pthread -fno-strict-aliasing
LDLIBS  := -lm -pthread

# Optional Debian libraries: used when pkg-config finds them.
PKGS := $(shell for p in liburing libpcre2-8 libutf8proc jansson libmicrohttpd libedit; do \
          pkg-config --exists $$p 2>/dev/null && echo $$p; done)
ifneq ($(PKGS),)
CFLAGS += $(shell pkg-config --cflags $(PKGS))
LDLIBS += $(shell pkg-config --libs $(PKGS))
endif
CFLAGS += $(foreach p,$(PKGS),-DMF_HAVE_$(shell echo $(p) | tr a-z- A-Z_ | sed 's/^LIB//')=1)

BUILD   ?= build
V ?= 0
ifeq ($(V),0)
Q := @
say = @echo "  $(1) $(2)"
else
Q :=
say = @true
endif
ARCH    := $(shell uname -m)

LIB_SRC := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
ifneq ($(ARCH),x86_64)
LIB_SRC := $(filter-out %_avx2.c %_avx512.c,$(LIB_SRC))
endif
ifneq ($(ARCH),aarch64)
LIB_SRC := $(filter-out %_neon.c,$(LIB_SRC))
endif
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ:= $(BENCH_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libmoeflash.a

.PHONY: all test asan fuzz bench help clean
# The kernel benchmark is built with the program, so that running it by
# hand never measures kernels older than the library.
all: moeflash $(if $(BENCH_SRC),$(BUILD)/bench_kernels)

help:
	@echo "make            build ./moeflash (and build/bench_kernels)"
	@echo "make test       build and run the test suite (ends with 'N passed, N failed')"
	@echo "make asan       the test suite under AddressSanitizer + UBSan"
	@echo "make fuzz       libFuzzer target for the GGUF parser (clang), short run"
	@echo "make bench      benchmarks (kernels, memory and disk reference in the same run)"
	@echo "make clean      remove build outputs"

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -O3 -mavx2 -mfma -mf16c -MMD -MP -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -O3 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c -MMD -MP -c $< -o $@
$(BUILD)/%_neon.o: %_neon.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -O3 -march=armv8.2-a+dotprod -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

moeflash: $(CLI_OBJ) $(LIB)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(LIB)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(LIB) $(LDLIBS)

# The test runner finds ../shared relative to the checkout (MF_SHARED overrides).
test: $(BUILD)/run_tests moeflash
	MF_BIN=$(CURDIR)/moeflash $(BUILD)/run_tests $(T)

# The binary the CLI tests run is the ordinary build; the library and the
# tests themselves run under the sanitizers.
asan: moeflash
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    build-asan/run_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 MF_ASAN=1 MF_BIN=$(CURDIR)/moeflash build-asan/run_tests $(T)

FUZZ_TIME ?= 60
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libmoeflash.a
	clang $(CSTD) -Iinclude -Isrc -O1 -g -fsanitize=fuzzer,address,undefined tools/fuzz_gguf.c \
	    build-fuzz/libmoeflash.a $(LDLIBS) $(if $(PKGS),$(shell pkg-config --libs $(PKGS))) -o build-fuzz/fuzz_gguf
	mkdir -p build-fuzz/corpus
	build-fuzz/fuzz_gguf -max_total_time=$(FUZZ_TIME) -max_len=65536 build-fuzz/corpus tools/fuzz_seed

$(BUILD)/bench_kernels: $(BENCH_OBJ) $(LIB)
	$(call say,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(BENCH_OBJ) $(LIB) $(LDLIBS)

# Kernels against memory bandwidth; then decode on BENCHMARKS.md's synthetic
# Qwen3-30B-A3B-shaped model, in RAM and under a 1.5 GiB memory cgroup (page
# cache included) so the disk cannot hide; then the same model with its
# experts in IQ2_XXS (2.06 instead of 4.5 bits per weight) under the same
# cap, and one line comparing the two streaming runs. Each report measures
# its own references (memory, disk) in the same run. A run's exit status
# survives its tee through a file.
MEMCAP ?= ../shared/tools/memcap
STREAM = { $(MEMCAP) 1536M ./moeflash bench --synthetic qwen3-30b-a3b --cache auto $(2); echo $$? > $(BUILD)/bench-$(1).rc; } \
	 | tee $(BUILD)/bench-$(1).txt; [ "$$(cat $(BUILD)/bench-$(1).rc)" = 0 ]
bench: moeflash $(if $(BENCH_SRC),$(BUILD)/bench_kernels)
	$(if $(BENCH_SRC),$(BUILD)/bench_kernels)
	./moeflash bench --synthetic qwen3-30b-a3b --prepare
	./moeflash bench --synthetic qwen3-30b-a3b --experts iq2_xxs --prepare
	@echo "=== in RAM (everything cached: a 512-token prompt touches every expert first)"
	./moeflash bench --synthetic qwen3-30b-a3b --io pread --cache 8G --prompt 512 -n 48
	@echo "=== prompt evaluation in RAM, after a warm-up"
	./moeflash bench --synthetic qwen3-30b-a3b --io pread --cache 8G --prefill 64,512,2048
	@echo "=== streaming under a 1536 MiB memory cap, --cache auto"
	@if [ -x $(MEMCAP) ] && [ "$$(id -u)" = 0 ]; then \
	   $(call STREAM,q4_K,) && \
	   echo "=== the same with IQ2_XXS experts, 1536 MiB memory cap, --cache auto" && \
	   $(call STREAM,iq2_xxs,--experts iq2_xxs) && \
	   echo "=== Q4_K vs IQ2_XXS experts, streaming" && \
	   sh bench/compare_experts.sh q4_K $(BUILD)/bench-q4_K.txt iq2_xxs $(BUILD)/bench-iq2_xxs.txt && \
	   echo "=== prompt evaluation under the 1536 MiB cap, --cache auto" && \
	   $(MEMCAP) 1536M ./moeflash bench --synthetic qwen3-30b-a3b --io direct --cache auto --prefill 64,512,2048; \
	 else echo "skipped: $(MEMCAP) needs root and cgroups"; fi

clean:
	rm -rf build build-asan build-fuzz moeflash

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
