-- The order postings were applied in. Neither entry ids (random, chosen before the posting) nor
-- posted_at (a business date: the repository's clock read before the posting waits for its accounts'
-- locks, or a date the caller chose) is that order: two postings on one account in the same
-- millisecond, or with equal posted_at, or committed in the other order by concurrent transactions,
-- were shown in an order that never happened, with running balances the account never had.
-- This adds the order, assigned by the same statement that changes a balance (under its row lock):
-- - accounts.posting_seq: the number of postings the account has had (its last account_seq);
-- - journal_lines.account_seq: the account's posting number, 1, 2, 3, ... per account, no gaps
--   (an entry's lines on one account share it: they are applied as one net change);
-- - journal_lines.balance_after: the account's balance right after that posting;
-- - journal_lines.journal_seq / accounts.journal_seq: a journal-wide order of entries (a Lamport
--   clock: 1 + the highest journal_seq of the entry's accounts, taken once all of them are locked),
--   increasing along every account's postings; entries sharing no account may tie.
-- Existing lines are numbered in the order statements showed them until now (posted_at, entry id),
-- balance_after being the running sum in that order. The SQL runs unchanged on SQLite and
-- PostgreSQL: journal_lines is rebuilt (SQLite cannot add a NOT NULL column without a default).

-- migrate:up
alter table accounts add column posting_seq bigint not null default 0;
alter table accounts add column journal_seq bigint not null default 0;

create table journal_lines_0003 (
  entry_id text not null,
  line_no integer not null,
  account_id text not null,
  amount bigint not null check (amount <> 0),
  account_seq bigint not null check (account_seq > 0),
  balance_after bigint not null,
  journal_seq bigint not null check (journal_seq > 0),
  constraint journal_lines_key primary key (entry_id, line_no),
  constraint journal_lines_entry_fkey foreign key (entry_id) references journal_entries (id),
  constraint journal_lines_account_fkey foreign key (account_id) references accounts (id)
);

insert into journal_lines_0003 (entry_id, line_no, account_id, amount, account_seq, balance_after, journal_seq)
select l.entry_id, l.line_no, l.account_id, l.amount,
       dense_rank() over (partition by l.account_id order by e.posted_at, l.entry_id),
       sum(l.amount) over (partition by l.account_id order by e.posted_at, l.entry_id),
       dense_rank() over (order by e.posted_at, l.entry_id)
from journal_lines l join journal_entries e on e.id = l.entry_id;

drop table journal_lines;
alter table journal_lines_0003 rename to journal_lines;
create index journal_lines_account on journal_lines (account_id, account_seq);
create index journal_lines_journal on journal_lines (journal_seq, entry_id, line_no);

update accounts set
  posting_seq = coalesce((select max(l.account_seq) from journal_lines l where l.account_id = accounts.id), 0),
  journal_seq = coalesce((select max(l.journal_seq) from journal_lines l where l.account_id = accounts.id), 0);

-- migrate:down
-- rebuilt again as 0002 created it (its constraint names included: a rebuild's names must be free
-- when 0003 is applied again, and Postgres keeps a renamed table's index names)
create table journal_lines_0002 (
  entry_id text not null,
  line_no integer not null,
  account_id text not null,
  amount bigint not null check (amount <> 0),
  constraint journal_lines_pkey primary key (entry_id, line_no),
  constraint journal_lines_entry_id_fkey foreign key (entry_id) references journal_entries (id),
  constraint journal_lines_account_id_fkey foreign key (account_id) references accounts (id)
);

insert into journal_lines_0002 (entry_id, line_no, account_id, amount)
select entry_id, line_no, account_id, amount from journal_lines;

drop table journal_lines;
alter table journal_lines_0002 rename to journal_lines;
create index journal_lines_account on journal_lines (account_id);
alter table accounts drop column journal_seq;
alter table accounts drop column posting_seq;
