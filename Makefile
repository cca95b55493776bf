# fc-gateway: the entry point.  `make run` and `make test` are the front door.
#
#   make deps    install the Debian packages (idempotent; skips apt when present)
#   make         build build/ngx_http_fc_module.so and build/fc-runner
#   make test    build, then run every test through ctest
#   make run     build, then serve conf-examples/quickstart on 127.0.0.1:8080
#   make bench   wrk benchmarks (tests/bench/)
#   make fuzz    run the wire-protocol fuzzer for 60 s
#   make install / uninstall   PREFIX (/usr/local), DESTDIR; Debian's nginx layout (packaging/install.sh)
#   make deb     build/deb/libnginx-mod-http-fc_*.deb and fc-runner_*.deb (dpkg-deb)

SHELL      := /bin/bash
ROOT       := $(CURDIR)
BUILD      := $(ROOT)/build
NGX_SRC    ?= /usr/share/nginx/src
NGX_COPY   := $(BUILD)/nginx-src
NGX_OBJS   := $(BUILD)/nginx
CMAKE_DIR  := $(BUILD)/cmake
JOBS       ?= $(shell nproc)
FC_WERROR  ?= 0
CTEST_ARGS ?=

DEB_PACKAGES := build-essential cmake pkg-config nginx nginx-dev python3-prometheus-client \
	libuv1-dev libmsgpack-dev libspdlog-dev libyaml-cpp-dev libyaml-dev libhttp-parser-dev \
	googletest libgtest-dev libcurl4-openssl-dev curl nlohmann-json3-dev python3-msgpack \
	python3 python3-flask python3-django python3-websockets gunicorn nodejs wrk \
	clang libclang-rt-14-dev iproute2 procps python3-dev uwsgi uwsgi-plugin-python3 valgrind libssl-dev nettle-dev \
	golang-go nftables

MODULE_SOURCES := config $(wildcard ngx_module/*.c ngx_module/*.h) src/fc_proto.c src/fc_proto.h src/fc_limits.h

# make install: see packaging/install.sh for each directory.
PREFIX     ?= /usr/local
DESTDIR    ?=
INSTALL_ENV = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" BUILD="$(BUILD)" \
	$(foreach v,SYSCONFDIR SYSTEMD_UNIT_DIR SYSUSERS_DIR NGX_MODULES_DIR NGX_MODULES_AVAILABLE NGX_MODULES_ENABLED,$(if $($(v)),$(v)="$($(v))"))

.PHONY: all deps module runner tests test run bench fuzz clean npm-modules install uninstall deb

all: module runner

deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEB_PACKAGES) 2>/dev/null \
		| awk '$$4 != "installed" {print $$1}'; \
		for p in $(DEB_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
		echo "deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi

# The module is built against Debian's nginx sources (nginx-dev) with the
# distribution's configure flags, so the .so loads into /usr/sbin/nginx.
# The sources are copied so the system tree is never written to.  -O2 as
# Debian builds nginx itself (`nginx -V`): conf_flags has no --with-cc-opt,
# and nginx's own default, -O, cost the module ~800 instructions a request.
NGX_CC_OPT := -O2
# Paths relative to the copy, where configure and make run: nginx's
# auto/make turns any ".S", ".cc" or ".cpp" in a source path into an object
# name, so a checkout under, say, /tmp/x.Sab12 would not build.
$(NGX_OBJS)/Makefile: config $(NGX_SRC)/conf_flags Makefile
	rm -rf $(NGX_COPY) && mkdir -p $(BUILD) && cp -r $(NGX_SRC) $(NGX_COPY)
	cd $(NGX_COPY) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(NGX_CC_OPT)" \
		--with-compat --add-dynamic-module=../.. --builddir=../nginx >$(BUILD)/nginx-configure.log \
		|| { tail -30 $(BUILD)/nginx-configure.log; exit 1; }

$(BUILD)/ngx_http_fc_module.so: $(NGX_OBJS)/Makefile $(MODULE_SOURCES)
	$(MAKE) -C $(NGX_COPY) -f $(NGX_OBJS)/Makefile modules
	cp $(NGX_OBJS)/ngx_http_fc_module.so $@

module: $(BUILD)/ngx_http_fc_module.so

$(CMAKE_DIR)/CMakeCache.txt: CMakeLists.txt tests/CMakeLists.txt
	cmake -S $(ROOT) -B $(CMAKE_DIR) -DFC_WERROR=$(if $(filter 1 ON on yes,$(FC_WERROR)),ON,OFF) >/dev/null

runner: $(CMAKE_DIR)/CMakeCache.txt
	cmake --build $(CMAKE_DIR) --target fc-runner -j $(JOBS)

tests: $(CMAKE_DIR)/CMakeCache.txt
	cmake --build $(CMAKE_DIR) -j $(JOBS)

# npm packages for the nodejs tests and examples (express 4, raw-body), into
# build/npm (idempotent; never global, never committed).
npm-modules:
	@$(ROOT)/tests/e2e/apps/nodejs/install.sh $(BUILD) >/dev/null

test: deps all tests npm-modules
	cd $(CMAKE_DIR) && ctest --output-on-failure --timeout 300 -j 2 $(CTEST_ARGS)

run: deps all
	@exec $(ROOT)/conf-examples/quickstart/run.sh

bench: deps all
	@exec $(ROOT)/tests/bench/run.sh

fuzz: deps
	@exec $(ROOT)/tests/fuzz/run.sh 60

install: all
	@$(INSTALL_ENV) $(ROOT)/packaging/install.sh install

uninstall:
	@$(INSTALL_ENV) $(ROOT)/packaging/install.sh uninstall

deb: all
	@BUILD="$(BUILD)" NGX_SRC="$(NGX_SRC)" $(ROOT)/packaging/deb.sh

clean:
	rm -rf $(BUILD)
