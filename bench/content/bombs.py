"""MIME bombs for bench/content and tests: deep nesting, many parts."""


def deep(size=800_000, crlf=True):
    """multipart/mixed nested until the message is about `size` bytes."""
    nl = "\r\n" if crlf else "\n"
    head = ("From: bomb@example.org" + nl + "To: alice@example.test" + nl +
            "Subject: deep" + nl + "MIME-Version: 1.0" + nl)
    out, i = [head], 0
    n = len(head)
    while n < size:
        s = (f"Content-Type: multipart/mixed; boundary=\"b{i}\"{nl}{nl}"
             f"--b{i}{nl}")
        out.append(s)
        n += len(s)
        i += 1
    out.append(f"Content-Type: text/plain{nl}{nl}deep inside{nl}")
    return "".join(out)


def wide(parts=20_000, crlf=True):
    """multipart/mixed with `parts` small text parts."""
    nl = "\r\n" if crlf else "\n"
    out = ["From: bomb@example.org" + nl + "To: alice@example.test" + nl +
           "Subject: wide" + nl + "MIME-Version: 1.0" + nl +
           "Content-Type: multipart/mixed; boundary=\"w\"" + nl + nl]
    for i in range(parts):
        out.append(f"--w{nl}Content-Type: text/plain{nl}{nl}p{i}{nl}")
    out.append(f"--w--{nl}")
    return "".join(out)


if __name__ == "__main__":
    import sys
    kind = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if kind == "deep":
        sys.stdout.write(deep(n or 800_000))
    else:
        sys.stdout.write(wide(n or 20_000))
