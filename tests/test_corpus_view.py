"""CorpusView: the UI's cached read of the corpus chunks."""

from model.remote import TrainingProcessError
from nnio_tui.corpus_view import CorpusView
from tests.fakes import FakeSession


def test_chunks_match_the_session_across_pages_and_are_read_once(tmp_path):
    fake = FakeSession(n_tokens=1000, checkpoint_dir=tmp_path)
    view = CorpusView(fake)
    page = CorpusView.PAGE
    wanted = fake.chunks(page - 5, page + 7)
    fake.calls.clear()
    assert view.chunks(page - 5, page + 7) == wanted
    assert fake.calls == [f"chunks 0 {page}", f"chunks {page} {2 * page}"]
    # sliding the window inside pages already read asks the session for nothing
    got = view.chunks(page - 4, page + 8)
    assert len(fake.calls) == 2
    assert got == fake.chunks(page - 4, page + 8)


def test_chunks_are_clipped_to_the_corpus(tmp_path):
    fake = FakeSession(n_tokens=300, checkpoint_dir=tmp_path)
    view = CorpusView(fake)
    assert view.chunks(-3, 2) == fake.chunks(0, 2)
    assert view.chunks(290, 400) == fake.chunks(290, 300)
    assert view.chunks(5, 5) == view.chunks(400, 500) == []
    assert f"chunks {CorpusView.PAGE} 300" in fake.calls  # the last page stops at the end


def test_old_pages_are_dropped(tmp_path):
    fake = FakeSession(n_tokens=CorpusView.PAGE * (CorpusView.MAX_PAGES + 2),
                       checkpoint_dir=tmp_path)
    view = CorpusView(fake)
    for page in range(CorpusView.MAX_PAGES + 1):
        view.chunks(page * CorpusView.PAGE, page * CorpusView.PAGE + 1)
    fake.calls.clear()
    view.chunks(CorpusView.PAGE, CorpusView.PAGE + 1)  # still kept
    assert fake.calls == []
    view.chunks(0, 1)  # the oldest was dropped
    assert fake.calls == [f"chunks 0 {CorpusView.PAGE}"]


def test_a_dead_session_shows_placeholders_and_says_why_once(tmp_path):
    # a session in a child process that died raises on every call; the UI thread reads
    # chunks while drawing, so it must get something to draw, not an exception
    fake = FakeSession(n_tokens=1000, checkpoint_dir=tmp_path)
    errors: list[str] = []
    view = CorpusView(fake, errors.append)
    first = view.chunks(0, 10)
    real_chunks = fake.chunks

    def dead(start, stop):
        raise TrainingProcessError("the training process was killed by signal 9")

    fake.chunks = dead
    assert view.chunks(0, 10) == first  # pages already read still show
    page = CorpusView.PAGE
    assert view.chunks(page, page + 3) == [CorpusView.MISSING] * 3
    assert view.chunks(2 * page, 2 * page + 3) == [CorpusView.MISSING] * 3
    assert errors == ["the training process was killed by signal 9"]
    fake.chunks = real_chunks  # placeholders are not kept
    assert view.chunks(page, page + 3) == real_chunks(page, page + 3)
