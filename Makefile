# Common commands. `make dev` runs the whole system locally; `make test` runs every test.
.PHONY: dev vm-host test bench bench-files bench-previews bench-ssh build web fmt lint clean-data

# Hub + web app + local VMs + embedded Postgres on http://127.0.0.1:8080
dev: build web vm-host
	./target/debug/aether-hub

# Isolated local VMs (as root: tools, uid range, the VM image's root file
# system, built once); without them the hub says so and serves one user.
vm-host:
	-scripts/vm-host.sh

build:
	cargo build --workspace --bins

web: web/node_modules/.package-lock.json
	cd web && npm run build

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci

# Format, lint, unit + integration tests (real hub, aetherd, Postgres), web tests, browser tests.
test:
	scripts/test.sh

# Terminal benchmarks through the real hub and tunnel, beside a bare PTY (release build).
bench:
	cargo build --release --workspace --bins
	./target/release/aether-bench

bench-files:
	cargo build --release --workspace --bins
	./target/release/aether-bench files

bench-previews:
	cargo build --release --workspace --bins
	./target/release/aether-bench previews

# Agents' SSH through the hub's jump host vs an OpenSSH jump host, to the same VM sshd.
bench-ssh:
	cargo build --release --workspace --bins
	./target/release/aether-bench ssh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Forget the local state of `make dev` (database, VMs, CA).
clean-data:
	rm -rf .data
