# Shared by scripts/gpu/run.sh and scripts/gpu/grader.sh (sourced): the XLA/CUDA environment
# for acdtcm on a device machine, from ../shared/reference/gomlx-v0.26.md. Needs PY (the
# Python whose site-packages hold JAX's CUDA PJRT plugin) for find_plugin.

# goenv runs a command with the XLA/CUDA environment (only acdtcm gets it: Python keeps its own).
goenv() {
	if [ -n "${PLUGIN:-}" ]; then
		env GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0 PJRT_PLUGIN_LIBRARY_PATH="$(dirname "$PLUGIN")" \
			LD_LIBRARY_PATH="${GO_LD_LIBRARY_PATH}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PATH="${GO_PATH_PREFIX:-}$PATH" \
			XLA_FLAGS="${XLA_FLAGS:-}" "$@"
	else
		env GOMLX_NO_AUTO_INSTALL=1 "$@"
	fi
}

# find_plugin locates JAX's CUDA PJRT plugin, the NVIDIA pip libraries, libdevice and ptxas.
find_plugin() {
	local sites
	sites=$($PY -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null | sort -u)
	export PLUGIN="${PJRT_PLUGIN:-}"
	if [ -z "$PLUGIN" ]; then
		for d in $sites; do
			[ -d "$d/jax_plugins" ] || continue
			PLUGIN=$(find "$d/jax_plugins" -name 'xla_cuda_plugin.so' 2>/dev/null | sort -r | head -1)
			[ -n "$PLUGIN" ] && break
		done
	fi
	if [ -z "$PLUGIN" ]; then
		echo "WARNING: no jax_plugins/*/xla_cuda_plugin.so found in: $sites"
		export BACKEND="xla:cuda" BACKEND_PLAIN="xla:cuda" GO_LD_LIBRARY_PATH=""
		return
	fi
	local sp nv
	sp="$(dirname "$(dirname "$(dirname "$PLUGIN")")")" # site-packages
	nv="$sp/nvidia"
	GO_LD_LIBRARY_PATH=""
	if [ -d "$nv" ]; then
		GO_LD_LIBRARY_PATH=$(find "$nv" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
		local libdevice ptxas
		libdevice=$(find "$nv" -path '*nvvm/libdevice/libdevice.10.bc' 2>/dev/null | head -1)
		ptxas=$(find "$nv" -name ptxas -type f 2>/dev/null | head -1)
		if [ -n "$libdevice" ] && [[ "${XLA_FLAGS:-}" != *xla_gpu_cuda_data_dir* ]]; then
			export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_cuda_data_dir=$(dirname "$(dirname "$(dirname "$libdevice")")")"
		fi
		[ -n "$ptxas" ] && export GO_PATH_PREFIX="$(dirname "$ptxas"):"
	fi
	export GO_LD_LIBRARY_PATH
	local opts="${XLA_OPTS-preallocate=false}"
	export BACKEND_PLAIN="xla:$PLUGIN"
	export BACKEND="xla:$PLUGIN${opts:+,$opts}"
	echo "plugin $PLUGIN; nvidia libs in $(echo "$GO_LD_LIBRARY_PATH" | tr ':' '\n' | grep -c .) dirs; XLA_FLAGS=${XLA_FLAGS:-}; ptxas ${ptxas:-not found}"
}
