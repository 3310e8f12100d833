"""Every name of the API contract resolves from `import dualad as da`, and
`import dualad` stays light (no SciPy, Numba or CuPy until used)."""
import subprocess
import sys

import dualad as da

CONTRACT = [
    "jvp", "vjp", "grad", "value_and_grad", "jacfwd", "jacrev", "jacobian", "hessian",
    "hvp", "derivative", "stop_gradient", "plan", "Parameter", "Module", "GradOperation",
    "Jvp", "Vjp", "tensor", "clip_by_global_norm", "set_kernels", "custom_jvp",
    "custom_vjp", "check_grads", "sparsity", "set_memory_budget", "Plan",
]


def test_contract_names_resolve():
    for name in CONTRACT + list(da.__all__):
        assert getattr(da, name) is not None, name
    assert da.forward.Dual and da.forward.HyperDual and da.forward.Taylor
    assert da.amp.StaticLossScaler and da.amp.DynamicLossScaler and da.amp.all_finite
    assert callable(da.autograd.grad)


def test_import_is_light():
    code = ("import sys, dualad, numpy as np; dualad.grad(np.sin)(0.5); "
            "print(sorted(m for m in ('scipy', 'numba', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
