const { DatabasePool, DatabaseError } = require('/work/main/packages/core/dist')
const { Pool } = require('/work/main/node_modules/tarn')
const m = { backend:'postgres', dialect:'postgres', target:'x', lanes:{readers:0}, connect: async()=>({}), isUsable:()=>true, ping: async()=>{}, reset: ()=>undefined, destroy: async()=>{}, execute: async()=>({rows:[],rowCount:0}), beginStatement:()=>'BEGIN', mapError:(e)=>new DatabaseError('QUERY_FAILED',String(e)) }
async function time(name, cycle){ for(let i=0;i<20000;i++) await cycle(); const N=200000; const t=process.hrtime.bigint(); for(let i=0;i<N;i++) await cycle(); console.log(name, Math.round(N/(Number(process.hrtime.bigint()-t)/1e9))) }
(async()=>{
  const pool = new DatabasePool(m, {min:1,max:1})
  const work = async()=>undefined
  await time('withConnection', ()=>pool.withConnection(work))
  const nm = pool.metrics; for (const k of ['recordConnectionAcquired','recordConnectionReturned']) nm[k]=()=>{}
  await time('withConnection no metrics', ()=>pool.withConnection(work))
  const tarn = new Pool({create: async()=>({}), destroy: async()=>{}, validate: ()=>true, min:0, max:1, propagateCreateError:true, acquireTimeoutMillis:30000})
  await time('tarn', async()=>{ const c = await tarn.acquire().promise; try { await work(c) } finally { tarn.release(c) } })
  await time('tarn validate Date', async()=>{ const c = await tarn.acquire().promise; try { await work(c) } finally { tarn.release(c) } })
  await pool.close(); await tarn.destroy()
})()
