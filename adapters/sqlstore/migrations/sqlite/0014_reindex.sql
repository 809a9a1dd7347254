-- kapbridge reindex (issue 13): rebuilding the search-index rows and
-- identifiers of every live resource from its stored JSON, a page per
-- transaction. The cursor is saved with each page, so a run that stops
-- resumes after the last page it committed; done marks a finished run,
-- after which the next run starts from the beginning.
CREATE TABLE reindex_progress (
	name   TEXT    NOT NULL PRIMARY KEY,
	tenant TEXT    NOT NULL,
	type   TEXT    NOT NULL,
	id     TEXT    NOT NULL,
	count  BIGINT  NOT NULL,
	done   BOOLEAN NOT NULL
);
