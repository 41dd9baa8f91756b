"""A queued trial (the first trial, a retry) is taken by one process only, on SQLite too.

Optuna takes a waiting trial by reading its state and writing RUNNING under
``SELECT … FOR UPDATE``, which SQLite ignores; the test holds two takers between their read
and their write, the interleaving in which both would run the trial."""

import threading

import optuna
from optuna.storages._rdb import models
from optuna.trial import TrialState

from metazoo.search.study import Search, open_storage
from metazoo.search.trial import Budget


def _two_takers_at_once(tmp_path, monkeypatch) -> list[bool]:
    search = Search(out=tmp_path, budget=Budget(seconds=1.0, clock="cpu", val_every=10), trials=1)
    first, second = open_storage(search), open_storage(search)
    study = optuna.create_study(storage=first, study_name="s")
    study.enqueue_trial({"x": 1.0})
    trial_id = study.get_trials(states=(TrialState.WAITING,))[0]._trial_id

    both_read = threading.Barrier(2)
    find = models.TrialModel.find_or_raise_by_id.__func__

    def find_then_wait(cls, trial_id, session, for_update=False):
        trial = find(cls, trial_id, session, for_update)
        if for_update:
            try:  # the other taker has read too, or is held back by the lock
                both_read.wait(timeout=2.0)
            except threading.BrokenBarrierError:
                pass
        return trial

    monkeypatch.setattr(models.TrialModel, "find_or_raise_by_id", classmethod(find_then_wait))
    taken: list[bool] = []

    def take(storage):
        taken.append(storage.set_trial_state_values(trial_id, state=TrialState.RUNNING))

    threads = [threading.Thread(target=take, args=(storage,)) for storage in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return taken


def test_a_waiting_trial_is_taken_once_by_two_processes_on_sqlite(tmp_path, monkeypatch):
    assert sorted(_two_takers_at_once(tmp_path, monkeypatch)) == [False, True]


def test_without_the_write_lock_both_would_take_it(tmp_path, monkeypatch):
    # The check above can fail: with SQLite's default transactions both takers succeed.
    import metazoo.search.study as study_module

    monkeypatch.setattr(study_module, "_serialized", lambda storage: storage)
    assert _two_takers_at_once(tmp_path, monkeypatch) == [True, True]
