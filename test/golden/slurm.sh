#!/bin/bash -l
#SBATCH --job-name=sortie-pilot.0000
#SBATCH --output=/scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#SBATCH --error=/scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#SBATCH --chdir=/scratch/u/sortie.sandbox/session.0000/pilot.0000
#SBATCH --time=01:30:00
#SBATCH --nodes=2
#SBATCH --ntasks=64
#SBATCH --cpus-per-task=1
#SBATCH --gpus=4
#SBATCH --mem=4096M
#SBATCH --partition=normal
#SBATCH --account=ABC123
#SBATCH --no-requeue
#SBATCH --constraint=cpu

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
