def test_direct_call(proxy):
    a, pa = proxy.subscriber()
    b, pb = proxy.subscriber()
    callee = proxy.phone(b, pb)
    call = proxy.call(a, pa, b)
    assert call.proc.returncode == 0, call.explain() + "\n" + callee.uas.explain() + proxy.logs()
