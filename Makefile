# Thin wrapper over tasks.sh (which needs nothing but bash and Python).
.PHONY: run test install
run:
	bash tasks.sh run
test:
	bash tasks.sh test
install:
	bash tasks.sh install
