-- The double-entry journal: one entry per posting, two or more lines whose amounts sum to zero
-- (negative = debit of the account's balance, positive = credit). An idempotency key is unique, so a
-- request sent twice posts once.

-- migrate:up
create table journal_entries (
  id text primary key,
  idempotency_key text,
  -- sha256 of the request a key was first used with: reusing a key for another request is refused
  request_hash text,
  currency text not null,
  description text not null,
  posted_at timestamptz not null,
  constraint journal_entries_idempotency_key unique (idempotency_key)
);

create index journal_entries_posted_at on journal_entries (posted_at);

create table journal_lines (
  entry_id text not null references journal_entries (id),
  line_no integer not null,
  account_id text not null references accounts (id),
  amount bigint not null check (amount <> 0),
  primary key (entry_id, line_no)
);

create index journal_lines_account on journal_lines (account_id);

-- migrate:down
drop table journal_lines;
drop table journal_entries;
