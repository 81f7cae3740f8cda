# Shortcuts for the scripts in scripts/ (the README documents those).
.PHONY: dev demo test bench setup build
dev: ; scripts/dev
demo: ; scripts/demo
test: ; scripts/test
bench: ; scripts/bench
setup: ; scripts/setup
build: ; scripts/build-workers
