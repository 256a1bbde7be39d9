const { DatabasePool, DatabaseError } = require('/work/main/packages/core/dist')
const { Pool } = require('/work/main/node_modules/tarn')
const m = { backend:'postgres', dialect:'postgres', target:'x', lanes:{readers:0}, connect: async()=>({}), isUsable:()=>true, ping: async()=>{}, reset: ()=>undefined, destroy: async()=>{}, execute: async()=>({rows:[],rowCount:0}), beginStatement:()=>'BEGIN', mapError:(e)=>new DatabaseError('QUERY_FAILED',String(e)) }
async function time(name, cycle){ for(let i=0;i<50000;i++) await cycle(); const N=300000; const t=process.hrtime.bigint(); for(let i=0;i<N;i++) await cycle(); console.log(name, Math.round(N/(Number(process.hrtime.bigint()-t)/1e9))) }
(async()=>{
  const pool = new DatabasePool(m, {min:1,max:1}); const work = async()=>undefined
  const tarn = new Pool({create: async()=>({}), destroy: async()=>{}, validate: ()=>true, min:0, max:1, propagateCreateError:true, acquireTimeoutMillis:30000})
  for (let r=0;r<3;r++){
  await time('full', ()=>pool.withConnection(work))
  await time('min', ()=>pool.withConnectionMin(work))
  await time('tarn', async()=>{ const c = await tarn.acquire().promise; try { await work(c) } finally { tarn.release(c) } })
  }
  await pool.close(); await tarn.destroy()
})()
