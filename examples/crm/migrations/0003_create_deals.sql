-- Deals move through the pipeline lead -> qualified -> proposal -> negotiation -> won | lost. Every
-- move is one row of deal_stage_history, numbered by the deal's version (1 = created as a lead).

-- migrate:up
create table deals (
  id text primary key,
  customer_id text not null references customers (id),
  title text not null,
  -- integer minor units
  amount bigint not null check (amount >= 0),
  currency text not null check (length(currency) = 3),
  stage text not null check (stage in ('lead', 'qualified', 'proposal', 'negotiation', 'won', 'lost')),
  version integer not null check (version >= 1),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  closed_at timestamptz,
  constraint deals_closed_at check ((stage in ('won', 'lost')) = (closed_at is not null))
);

create index deals_customer on deals (customer_id);
create index deals_stage on deals (stage);

create table deal_stage_history (
  deal_id text not null references deals (id),
  seq integer not null,
  from_stage text,
  to_stage text not null,
  note text,
  changed_at timestamptz not null,
  primary key (deal_id, seq)
);

-- migrate:down
drop table deal_stage_history;
drop table deals;
